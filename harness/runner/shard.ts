/**
 * Sharding (`--shard i/n`): a CI job matrix spreads one run over n machines, each running a stable 1/n of the
 * checks, and `vhu-conform merge` puts their reports back together (runner/merge.ts). The checks are dealt in
 * run order, one to each shard in turn, so that every shard gets some of each area (the launch-heavy
 * conventions, the traffic): a stable split, the same for every shard of one vhu-conform version and one
 * selection. A shard also runs what its checks need (`Check.needs`, transitively) for the gates only: the
 * gates decide as they do in a full run, and those checks' verdicts are their own shard's to report.
 */
import { UsageError } from '../errors.js';
import type { Check } from './check.js';

/** Shard `index` (1-based) of `count`. */
export interface Shard {
  index: number;
  count: number;
}

/** The largest count: more shards than checks leaves shards empty, and no CI matrix is that wide. */
const MAX_SHARDS = 64;

/** Parses `i/n` (1 <= i <= n <= 64); anything else is a usage error naming the form. */
export function parseShard(text: string): Shard {
  const match = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = match ? Number(match[1]) : Number.NaN;
  const count = match ? Number(match[2]) : Number.NaN;
  if (!match || count < 1 || count > MAX_SHARDS || index < 1 || index > count)
    throw new UsageError(
      `--shard ${text}: expected i/n, shard i of n, with 1 <= i <= n <= ${MAX_SHARDS} (e.g. --shard 2/4)`,
    );
  return { index, count };
}

/** How a shard is written in reports and messages: `2/4`. */
export function shardName(shard: Shard): string {
  return `${shard.index}/${shard.count}`;
}

/** What a shard runs, in `selected`'s order: its own checks, and those it runs for their gates only. */
export interface ShardPlan {
  checks: Check[];
  /** The ids of the checks it reports (its own); the others ran for the gates of these. */
  own: Set<string>;
}

/**
 * Shard `shard` of `selected` (the run's selection, in run order): every n-th check from the i-th, and what
 * those need among `selected`, transitively. A need outside the selection stays out, as without --shard.
 */
export function planShard(selected: readonly Check[], shard: Shard): ShardPlan {
  const own = new Set(selected.filter((_, i) => i % shard.count === shard.index - 1).map((c) => c.id));
  const byId = new Map(selected.map((c) => [c.id, c]));
  const running = new Set(own);
  const queue = [...own];
  for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
    for (const need of byId.get(id)?.needs ?? []) {
      if (running.has(need) || !byId.has(need)) continue;
      running.add(need);
      queue.push(need);
    }
  }
  return { checks: selected.filter((c) => running.has(c.id)), own };
}
