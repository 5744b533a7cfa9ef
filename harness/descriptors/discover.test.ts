import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { dir } from 'tmp-promise';
import {
  descriptorDirsFromEnv,
  discoverDescriptors,
  lintDescriptor,
  standardDescriptorDirs,
} from './discover.js';

describe('descriptors/discover', () => {
  let root: { path: string; cleanup: () => Promise<void> };
  beforeEach(async () => {
    root = await dir({ unsafeCleanup: true });
  });
  afterEach(() => root.cleanup());

  async function put(folder: string, name: string, content: string | object): Promise<string> {
    const d = path.join(root.path, folder);
    await mkdir(d, { recursive: true });
    const file = path.join(d, name);
    await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content));
    return file;
  }

  it('sorts by name, lets the specific folder override, and masks with zero-length files', async () => {
    const doc = { description: 'x', type: 'gpu', binary: '/bin/true' };
    await put('share', '50-b.json', doc);
    await put('share', '50-a.json', doc);
    await put('share', '60-hidden.json', doc);
    const etcB = await put('etc', '50-b.json', { ...doc, description: 'local' });
    await put('etc', '10-first.json', doc);
    await put('user', '60-hidden.json', '');
    await put('user', 'notes.txt', 'ignored');
    const dirs = ['share', 'etc', 'user', 'missing'].map((d) => path.join(root.path, d));
    const found = discoverDescriptors(dirs);
    expect(found.effective.map((f) => f.name)).to.deep.equal(['10-first.json', '50-a.json', '50-b.json']);
    const b = found.effective[2]!;
    expect(b.path).to.equal(etcB);
    expect(b.overrides).to.deep.equal([path.join(root.path, 'share', '50-b.json')]);
    expect(found.masked.map((f) => f.name)).to.deep.equal(['60-hidden.json']);
  });

  it('lints schema and binary', async () => {
    const exe = await put('bin', 'backend', '#!/bin/sh\n');
    await chmod(exe, 0o755);
    const notExe = await put('bin', 'plain', 'x');
    const cases: Array<[object | string, RegExp | null, RegExp | null]> = [
      [{ description: 'ok', type: 'gpu', binary: exe }, null, null],
      ['{ nope', /not JSON/, null],
      [{ description: 'd', type: 'gpu', binary: 'relative/path' }, null, /not an absolute path/],
      [{ description: 'd', type: 'gpu', binary: notExe }, null, /not executable/],
      [{ description: 'd', type: 'gpu', binary: '/nonexistent/x' }, null, /does not exist/],
      [{ type: 'teapot', binary: exe }, /description|allowed values/, null],
    ];
    for (const [content, schema, binary] of cases) {
      const file = await put('d', 'x.json', content);
      const lint = lintDescriptor({ name: 'x.json', path: file, overrides: [] });
      const label = JSON.stringify(content);
      if (schema) expect(lint.schemaErrors.join(), label).to.match(schema);
      else expect(lint.schemaErrors, label).to.deep.equal([]);
      if (binary) expect(lint.binaryErrors.join(), label).to.match(binary);
      else expect(lint.binaryErrors, label).to.deep.equal([]);
    }
  });

  it('takes the folders from XDG_CONFIG_HOME, HOME, or VHU_DESCRIPTOR_DIRS', () => {
    expect(standardDescriptorDirs({ XDG_CONFIG_HOME: '/x' })[2]).to.equal('/x/qemu/vhost-user');
    expect(standardDescriptorDirs({ HOME: '/h' })[2]).to.equal('/h/.config/qemu/vhost-user');
    expect(descriptorDirsFromEnv({ VHU_DESCRIPTOR_DIRS: '/a:/b' })).to.deep.equal(['/a', '/b']);
  });
});
