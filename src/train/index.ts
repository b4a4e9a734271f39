export * from './optim.ts';
export * from './schedule.ts';
