// Learning-rate schedules: functions of the step (0-based) returning a multiplier or a rate.

export interface CosineOptions {
  /** Peak learning rate reached at the end of warmup. */
  lr: number;
  warmupSteps: number;
  totalSteps: number;
  /** Floor at the end of the cosine (default 0). */
  minLr?: number;
}

/** Linear warmup from 0 to lr over warmupSteps, then cosine decay to minLr at totalSteps. */
export function cosineWithWarmup(o: CosineOptions): (step: number) => number {
  const minLr = o.minLr ?? 0;
  if (!(o.totalSteps > 0) || o.warmupSteps < 0 || o.warmupSteps > o.totalSteps) throw new Error(`cosineWithWarmup: need 0 <= warmupSteps (${o.warmupSteps}) <= totalSteps (${o.totalSteps})`);
  return (step: number): number => {
    if (step < o.warmupSteps) return (o.lr * (step + 1)) / o.warmupSteps;
    if (step >= o.totalSteps) return minLr;
    const decay = o.totalSteps - o.warmupSteps;
    const progress = decay === 0 ? 1 : (step - o.warmupSteps) / decay;
    return minLr + 0.5 * (o.lr - minLr) * (1 + Math.cos(Math.PI * progress));
  };
}

export function constantLr(lr: number): (step: number) => number {
  return () => lr;
}
