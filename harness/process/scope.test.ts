import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { expect } from 'chai';
import { pollUntil } from '../util/deadline.js';
import { Scope } from './scope.js';

describe('process/scope', () => {
  it('releases in reverse order on close, and goes on past a release that fails', async () => {
    const scope = new Scope();
    const order: string[] = [];
    scope.defer('a', () => {
      order.push('a');
    });
    scope.defer('b', () => {
      throw new Error('b broke');
    });
    scope.defer('c', async () => {
      order.push('c');
    });
    expect(await scope.close()).to.deep.equal(['releasing b: b broke']);
    expect(order).to.deep.equal(['c', 'a']);
  });

  it('releases at once what it is handed after closing (a launch that outlived its check), then throws', async () => {
    const scope = new Scope();
    await scope.close();
    let released = false;
    expect(() =>
      scope.defer('late fd', () => {
        released = true;
      }),
    ).to.throw(/scope already closed; released late fd at once/);
    await pollUntil(() => (released ? true : undefined), 1000, 'the late release');
    // A temp folder still being made when the scope closes is removed too, not left behind.
    const prefix = `vhu-scope-test-${process.pid}-`;
    const late = new Scope();
    const making = late.tempDir(prefix);
    await late.close();
    await making.catch((err: Error) => expect(err.message).to.match(/scope already closed/));
    await pollUntil(
      () => (readdirSync(tmpdir()).some((f) => f.startsWith(prefix)) ? undefined : true),
      1000,
      'the late temp folder removed',
    );
  });
});
