/**
 * A seed that differs from run to run (the time, the process, a random part): sector patterns, frames and
 * pixels made from it tell this run's data from what a former run left in a back-end or on its disk.
 */
export function freshSeed(): number {
  return (Date.now() ^ (process.pid << 16) ^ Math.floor(Math.random() * 0x1_0000)) >>> 0;
}
