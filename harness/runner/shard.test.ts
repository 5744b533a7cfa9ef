import { expect } from 'chai';
import { UsageError } from '../errors.js';
import type { Check } from './check.js';
import { parseShard, planShard, shardName } from './shard.js';

/** A check that only the plan looks at: its id and what it needs. */
function check(id: string, needs?: string[]): Check {
  return {
    id,
    title: id,
    severity: 'MUST',
    spec: 'vhost-user.rst#x',
    area: id.split('.')[0]!,
    ...(needs ? { needs } : {}),
    run: async () => '',
  } as Check;
}

describe('runner/shard', () => {
  it('parses i/n and writes it back', () => {
    expect(parseShard('2/4')).to.deep.equal({ index: 2, count: 4 });
    expect(shardName(parseShard(' 1/1 '))).to.equal('1/1');
  });

  for (const bad of ['0/3', '4/3', '1/0', '1/65', '1', '1/2/3', 'a/b', '-1/2', '1.5/3'])
    it(`refuses --shard ${bad}, naming the form`, () => {
      expect(() => parseShard(bad))
        .to.throw(UsageError)
        .with.property('message')
        .that.matches(/^--shard .*: expected i\/n/);
    });

  const checks = [
    check('conv.a'),
    check('conv.b'),
    check('proto.c', ['conv.a']),
    check('proto.d'),
    check('vring.e', ['proto.c']),
    check('vring.f', ['outside.selection']),
  ];

  it('deals the checks in run order, each to one shard, every shard getting its turn', () => {
    const owners = [1, 2, 3].map((index) => [...planShard(checks, { index, count: 3 }).own]);
    expect(owners).to.deep.equal([
      ['conv.a', 'proto.d'],
      ['conv.b', 'vring.e'],
      ['proto.c', 'vring.f'],
    ]);
  });

  it('runs what its own checks need, transitively, in run order, for their gates only', () => {
    const plan = planShard(checks, { index: 2, count: 3 });
    expect(plan.checks.map((c) => c.id)).to.deep.equal(['conv.a', 'conv.b', 'proto.c', 'vring.e']);
    expect([...plan.own]).to.deep.equal(['conv.b', 'vring.e']);
  });

  it('leaves out a need the selection left out, as a run without --shard does', () => {
    const plan = planShard(checks, { index: 3, count: 3 });
    expect(plan.checks.map((c) => c.id)).to.deep.equal(['conv.a', 'proto.c', 'vring.f']);
  });

  it('one shard of one is the whole selection', () => {
    const plan = planShard(checks, { index: 1, count: 1 });
    expect(plan.checks).to.deep.equal(checks);
    expect(plan.own.size).to.equal(checks.length);
  });
});
