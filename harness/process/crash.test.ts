import { expect } from 'chai';
import { crashSignature, endWords, judgeEnd, lastStderrLine, quoteLine } from './crash.js';

const exited = (code: number) => ({ code, signal: null });
const killed = (signal: string) => ({ code: null, signal });

/** What a back-end in each language prints as it dies of a bad message (written for these tests). */
const SAMPLES: Array<{ language: string; stderr: string; code: number | string; says: RegExp }> = [
  {
    language: 'Python',
    stderr: [
      'INFO: client connected',
      'Traceback (most recent call last):',
      '  File "/usr/libexec/vhost-user-py", line 42, in <module>',
      '    main()',
      '  File "/usr/libexec/vhost-user-py", line 30, in handle',
      '    request, flags, size = struct.unpack("<III", data)',
      'struct.error: unpack requires a buffer of 12 bytes',
      '',
    ].join('\n'),
    code: 1,
    says: /^a Python traceback on stderr: "Traceback \(most recent call last\):" \.\.\. "struct\.error: unpack requires a buffer of 12 bytes"; exit status 1$/,
  },
  {
    language: 'Go',
    stderr: [
      'panic: runtime error: index out of range [300] with length 2',
      '',
      'goroutine 7 [running]:',
      'main.(*backend).setVringNum(...)',
      '\t/src/backend.go:88',
      'main.(*backend).serve(0xc000010000)',
      '\t/src/backend.go:61 +0x1a5',
      'created by main.main in goroutine 1',
      '\t/src/main.go:20 +0x85',
      '',
    ].join('\n'),
    code: 2,
    says: /^a Go panic on stderr: "panic: runtime error: index out of range \[300\] with length 2"; exit status 2$/,
  },
  {
    language: 'Go (nil dereference)',
    stderr:
      'panic: runtime error: invalid memory address or nil pointer dereference\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x47e1d2]\n\ngoroutine 1 [running]:\nmain.main()\n',
    code: 2,
    says: /a Go panic on stderr: "panic: runtime error: invalid memory address/,
  },
  {
    language: 'Rust (1.73 on)',
    stderr:
      "thread 'vhost-user' panicked at src/vring.rs:214:9:\nindex out of bounds: the len is 2 but the index is 300\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n",
    code: 101,
    says: /^a Rust panic on stderr: "thread 'vhost-user' panicked at src\/vring\.rs:214:9:" \.\.\. "index out of bounds: the len is 2 but the index is 300"; exit status 101$/,
  },
  {
    language: 'Rust (before 1.73)',
    stderr: "thread 'main' panicked at 'called `Option::unwrap()` on a `None` value', src/main.rs:7:5\n",
    code: 101,
    says: /a Rust panic on stderr: "thread 'main' panicked at 'called `Option::unwrap\(\)`/,
  },
  {
    language: 'C++',
    stderr:
      "terminate called after throwing an instance of 'std::out_of_range'\n  what():  vector::_M_range_check: __n (which is 300) >= this->size() (which is 2)\n",
    code: 'SIGABRT',
    says: /^killed by SIGABRT; an uncaught C\+\+ exception on stderr: "terminate called after throwing an instance of 'std::out_of_range'" \.\.\. "vector::_M_range_check/,
  },
  {
    language: 'Java',
    stderr:
      'Exception in thread "main" java.lang.ArrayIndexOutOfBoundsException: Index 300 out of bounds for length 2\n\tat vhost.Backend.setVringNum(Backend.java:88)\n\tat vhost.Backend.main(Backend.java:20)\n',
    code: 1,
    says: /an uncaught Java exception on stderr: "Exception in thread \\"main\\" java\.lang\.ArrayIndexOutOfBoundsException/,
  },
  {
    language: 'Node',
    stderr: [
      '/opt/backend/index.js:88',
      '    const ring = this.rings[index].setNum(num);',
      '                                   ^',
      '',
      "TypeError: Cannot read properties of undefined (reading 'setNum')",
      '    at Backend.setVringNum (/opt/backend/index.js:88:36)',
      '    at Socket.<anonymous> (/opt/backend/index.js:61:12)',
      '    at Socket.emit (node:events:517:28)',
      '',
      'Node.js v20.11.1',
      '',
    ].join('\n'),
    code: 1,
    says: /an uncaught JavaScript exception on stderr: "TypeError: Cannot read properties of undefined \(reading 'setNum'\)"; exit status 1$/,
  },
  {
    language: 'Node (a rejection)',
    stderr:
      'node:internal/process/promises:289\n            triggerUncaughtException(err, true /* fromPromise */);\n            ^\n\n[UnhandledPromiseRejection: This error originated either by throwing inside of an async function without a catch block, or by rejecting a promise which was not handled with .catch(). The promise rejected with the reason "bad ring".] {\n  code: \'ERR_UNHANDLED_REJECTION\'\n}\n',
    code: 1,
    says: /an uncaught JavaScript exception on stderr: "\[UnhandledPromiseRejection: /,
  },
  {
    language: '.NET',
    stderr:
      'Unhandled exception. System.IndexOutOfRangeException: Index was outside the bounds of the array.\n   at Backend.SetVringNum(Int32 index) in /src/Backend.cs:line 88\n',
    code: 134,
    says: /an unhandled \.NET exception on stderr: "Unhandled exception\. System\.IndexOutOfRangeException/,
  },
  {
    language: 'Ruby',
    stderr:
      "backend.rb:88:in `set_vring_num': undefined method `num=' for nil:NilClass (NoMethodError)\n\tfrom backend.rb:61:in `block in serve'\n",
    code: 1,
    says: /an uncaught Ruby exception on stderr: "backend\.rb:88:in `set_vring_num'/,
  },
  {
    language: 'C, glibc stack protector',
    stderr: '*** stack smashing detected ***: terminated\n',
    code: 'SIGABRT',
    says: /^killed by SIGABRT; glibc's stack protector on stderr: "\*\*\* stack smashing detected \*\*\*: terminated"$/,
  },
  {
    language: 'C, glibc heap check',
    stderr: 'free(): double free detected in tcache 2\n',
    code: 'SIGABRT',
    says: /glibc's heap checks on stderr: "free\(\): double free detected in tcache 2"/,
  },
  {
    language: 'C, assert()',
    stderr:
      "vhost-user-blk: ../contrib/vhost-user-blk/vhost-user-blk.c:123: vub_queue_set_started: Assertion `vq' failed.\n",
    code: 'SIGABRT',
    says: /a failed assertion on stderr: "vhost-user-blk: \.\.\/contrib/,
  },
  {
    language: 'C, AddressSanitizer',
    stderr:
      '=================================================================\n==4242==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x602000000020 at pc 0x55d0 bp 0x7ffc sp 0x7ffc\nREAD of size 4 at 0x602000000020 thread T0\n',
    code: 1,
    says: /a sanitizer report on stderr: "==4242==ERROR: AddressSanitizer: heap-buffer-overflow/,
  },
  {
    language: 'a shell wrapper',
    stderr:
      '/usr/libexec/run-backend: line 3: 12345 Aborted                 (core dumped) /usr/libexec/backend "$@"\n',
    code: 134,
    says: /a death by signal reported by a shell on stderr: "\/usr\/libexec\/run-backend: line 3: 12345 Aborted/,
  },
];

describe('crash signatures', () => {
  for (const { language, stderr, code, says } of SAMPLES) {
    it(`${language}: a crash, quoting what stderr says`, () => {
      const end = judgeEnd(typeof code === 'number' ? exited(code) : killed(code), stderr);
      expect(end.crashed, end.how).to.equal(true);
      expect(end.how).to.match(says);
    });
  }

  it('a non-zero exit with a clean message is an exit, not a crash, and says so', () => {
    expect(judgeEnd(exited(1), 'vhost-user: invalid message, disconnecting\n')).to.deep.equal({
      crashed: false,
      how: 'exit status 1; stderr: "vhost-user: invalid message, disconnecting"',
    });
    expect(judgeEnd(exited(1), 'EAL: Error - exiting with code: 1\n  Cause: Cannot init\n').crashed).to.equal(
      false,
    );
    expect(judgeEnd(exited(3), '')).to.deep.equal({
      crashed: false,
      how: 'exit status 3; nothing on stderr',
    });
    expect(judgeEnd(exited(0), '')).to.deep.equal({ crashed: false, how: 'exit status 0' });
  });

  it('a traceback logged by a process that exits 0 (the exception was handled) is no crash', () => {
    const logged = 'Traceback (most recent call last):\n  File "x.py", line 1, in f\nValueError: bad ring\n';
    expect(judgeEnd(exited(0), logged).crashed).to.equal(false);
    expect(crashSignature(logged, false)).to.equal(undefined);
    expect(crashSignature(logged, true)).to.match(/^a Python traceback/);
  });

  it('a sanitizer, an assertion or a Rust panic is a crash even when the process lives on', () => {
    expect(crashSignature("thread '<unnamed>' panicked at src/lib.rs:1:1:\nboom\n", false)).to.match(
      /^a Rust panic/,
    );
    expect(crashSignature('prog: a.c:1: f: Assertion `x' + "' failed.\n", false)).to.match(
      /^a failed assertion/,
    );
    expect(judgeEnd(exited(0), 'vq.c:7:3: runtime error: index 1024 out of bounds').crashed).to.equal(true);
  });

  it('a signal is a crash with or without a word on stderr', () => {
    expect(judgeEnd(killed('SIGSEGV'), '')).to.deep.equal({
      crashed: true,
      how: 'killed by SIGSEGV; nothing on stderr',
    });
    expect(judgeEnd(killed('SIGABRT'), 'last words\n').how).to.equal(
      'killed by SIGABRT; stderr: "last words"',
    );
  });

  it('lines such as "Aborted connection" or a compiler-like "fatal error:" are no signature', () => {
    expect(crashSignature('client: Aborted connection 4 to db\n', true)).to.equal(undefined);
    expect(crashSignature('backend.c: fatal error: cannot open disk\n', true)).to.equal(undefined);
    expect(crashSignature('panic: not really\n', true)).to.equal(undefined);
  });

  it('quotes escaped and bounded: the back-end prints what it likes', () => {
    expect(quoteLine('  a "quoted" \u001b[31mred\u001b[0m line ')).to.equal(
      '"a \\"quoted\\" \\u001b[31mred\\u001b[0m line"',
    );
    expect(quoteLine('x'.repeat(500))).to.have.length(205);
    expect(lastStderrLine('first\nsecond\n\n')).to.equal('stderr: "second"');
  });

  it('says in a line how it went: died or exited', () => {
    expect(endWords(judgeEnd(killed('SIGABRT'), 'last words\n'))).to.equal(
      'it died (killed by SIGABRT; stderr: "last words")',
    );
    expect(endWords(judgeEnd(exited(1), 'bye\n'))).to.equal('it exited (exit status 1; stderr: "bye")');
  });
});
