// The SIMD kernels of kernels_isa.h built for portable scalar.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

namespace chimera {
namespace kern {
namespace isa_scalar {

static constexpr const char* kIsaName = "scalar";
#include "kernels_vec_scalar.h"
#include "kernels_isa.h"

}  // namespace isa_scalar

const KernelTable& table_scalar() { return isa_scalar::kTable; }

}  // namespace kern
}  // namespace chimera
