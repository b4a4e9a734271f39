#!/usr/bin/python3
# Writes test/golden/optim.json: parameter trajectories of torch.optim.AdamW / SGD and
# torch.nn.utils.clip_grad_norm_ on fixed gradients. Run with Debian's python3-torch:
#   /usr/bin/python3 scripts/gen_golden_optim.py
import json
import torch

torch.manual_seed(0)
N, STEPS = 37, 5
p0 = torch.randn(N)
grads = [torch.randn(N) for _ in range(STEPS)]

def run(make):
    p = torch.nn.Parameter(p0.clone())
    opt = make([p])
    traj = []
    for g in grads:
        p.grad = g.clone()
        opt.step()
        traj.append(p.detach().clone().tolist())
    return traj

cases = {
    "adamw": dict(kind="adamw", opts=dict(lr=1e-2, betas=[0.9, 0.95], eps=1e-8, weightDecay=0.1),
                  traj=run(lambda ps: torch.optim.AdamW(ps, lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1))),
    "adamw_default": dict(kind="adamw", opts=dict(lr=1e-3),
                          traj=run(lambda ps: torch.optim.AdamW(ps, lr=1e-3))),
    "sgd_momentum": dict(kind="sgd", opts=dict(lr=0.1, momentum=0.9, dampening=0.1, weightDecay=0.01),
                         traj=run(lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01))),
    "sgd_nesterov": dict(kind="sgd", opts=dict(lr=0.05, momentum=0.8, nesterov=True),
                         traj=run(lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True))),
    "sgd_plain": dict(kind="sgd", opts=dict(lr=0.3), traj=run(lambda ps: torch.optim.SGD(ps, lr=0.3))),
}

a = torch.nn.Parameter(torch.randn(5, 3)); a.grad = torch.randn(5, 3) * 3
b = torch.nn.Parameter(torch.randn(4)); b.grad = torch.randn(4) * 3
ga, gb = a.grad.clone(), b.grad.clone()
norm = torch.nn.utils.clip_grad_norm_([a, b], max_norm=1.0)
clip = dict(a=ga.flatten().tolist(), b=gb.flatten().tolist(), norm=float(norm),
            a_clipped=a.grad.flatten().tolist(), b_clipped=b.grad.flatten().tolist())

json.dump(dict(source="torch " + torch.__version__, p0=p0.tolist(), grads=[g.tolist() for g in grads],
               cases=cases, clip=clip), open("test/golden/optim.json", "w"))
print("wrote test/golden/optim.json")
