// A `node --test` reporter that writes the run's results as one JSON object to the descriptor in
// $CET_RESULT_FD: the same report the Python runner (pytest_runner.py) writes, so the host reads both alike:
//
//   {"cases": [{"name", "outcome", "duration_s", "error_type", "message", "traceback_tail"}],
//    "collect_errors": [...], "rusage": {"cpu_s", "peak_memory_mb"}}
//
// This file runs INSIDE the sandbox, in the `node --test` parent process; the test file itself runs in a
// child process that node spawns and whose events arrive here. Usage:
//
//   node --test --test-reporter /opt/cet/runtime/node_reporter.mjs --test-reporter-destination stdout FILE
//
// - cases: leaf tests only, named "suite > test" when nested (suites and tests with subtests count only when
//   they fail by themselves, e.g. a describe body that throws; the per-file wrapper never does); outcome
//   passed | failed | error (hook failures, cancellations) | skipped (skip and todo).
// - collect_errors: the test FILE failing as a whole (the solution does not compile, throws when required,
//   the child process exits or dies before reporting): the child's stderr condensed, its key line LAST
//   ("SyntaxError: ..." only for a compile-time syntax error; "FATAL ERROR: ... heap out of memory" ...).
// - rusage: cpu_s of this process plus its reaped children (/proc/self/stat cutime/cstime); peak_memory_mb
//   the larger of this process's peak RSS and its children's, sampled from /proc while they run.
// - the child's stdout/stderr go on to this process's stdout/stderr, so the sandbox's output cap applies.

import fs from 'node:fs';
import path from 'node:path';

const RESULT_FD = process.env.CET_RESULT_FD;
delete process.env.CET_RESULT_FD; // the test file's child process (the solution) is not told where results go

const MAX_MESSAGE = 500;
const MAX_TRACEBACK = 1500;
const MAX_STDERR_KEPT = 64 * 1024; // per test file, for the collect error
const CLOCK_TICKS = 100; // USER_HZ: the unit of /proc/<pid>/stat times on Linux
const NODE_FRAME = /^\s*at (?:.*\()?(?:node:|internal\/)/;
const ERROR_LINE = /^(?:[A-Z][\w$]*(?:Error|Exception)|Error)(?: \[[A-Z0-9_]+\])?: |^FATAL ERROR: |^Uncaught /;
const COMPILE_FRAME = /wrapSafe|compileFunction|node:internal\/modules\/esm|compileSourceTextModule/;
const CANCEL_TYPES = new Set(['cancelledByParent', 'hookFailed', 'parentAlreadyFinished']);

function clip(text, limit, tail = false) {
  if (text.length <= limit) return text;
  return tail ? '...' + text.slice(-limit) : text.slice(0, limit) + '...';
}

function errorType(error, cause) {
  if (cause !== null && typeof cause === 'object') {
    const name = typeof cause.name === 'string' && cause.name ? cause.name : cause.constructor?.name || 'Error';
    // an ArrayBuffer / Buffer the address-space limit refused: the JavaScript form of Python's MemoryError
    if (name === 'RangeError' && /allocation failed|could not allocate memory/i.test(String(cause.message))) {
      return 'MemoryError';
    }
    // a system error (a refused connection, a missing file) says what it is in its code: ECONNREFUSED, ENOENT
    return name === 'Error' && typeof cause.code === 'string' && /^E[A-Z]+$/.test(cause.code) ? cause.code : name;
  }
  if (error?.failureType && error.failureType !== 'testCodeFailure') return error.failureType;
  if (cause === undefined) return 'Error';
  const kind = cause === null ? 'null' : typeof cause;
  return kind.charAt(0).toUpperCase() + kind.slice(1); // e.g. `throw "text"` -> "String"
}

function describeFailure(error) {
  const cause = error && 'cause' in error ? error.cause : error;
  const isObject = cause !== null && typeof cause === 'object';
  const message = isObject ? String(cause.message ?? '') : String(cause);
  const stack = isObject && typeof cause.stack === 'string' ? cause.stack : message;
  const frames = stack.split('\n').filter((line) => !NODE_FRAME.test(line)).join('\n').trimEnd();
  return {
    error_type: errorType(error, cause),
    message: clip(message, MAX_MESSAGE),
    traceback_tail: clip(frames, MAX_TRACEBACK, true),
  };
}

function outcomeOf(event) {
  const data = event.data;
  if (data.skip !== undefined || data.todo !== undefined) return 'skipped';
  if (event.type === 'test:pass') return 'passed';
  return CANCEL_TYPES.has(data.details?.error?.failureType) ? 'error' : 'failed';
}

// The test file failing as a whole: its stderr condensed to the source excerpt, the user's frames and the
// error line, which comes last (the host reads the last line as the reason).
function fileFailure(file, error, stderr) {
  const lines = stderr.split('\n').map((line) => line.trimEnd());
  const at = lines.findLastIndex((line) => ERROR_LINE.test(line)); // the last: the solution may print errors
  const how = error?.signal ? `killed by ${error.signal}` : `exit code ${error?.exitCode ?? '?'}`;
  const header = `${path.basename(file)}: the test file failed (${how})`;
  if (at < 0) {
    const tail = lines.filter((line) => line.trim() && !/^Node\.js v\d/.test(line)).slice(-8);
    return clip([header, ...tail, `the test process ended before reporting its tests (${how})`].join('\n'),
      MAX_TRACEBACK, true);
  }
  let excerpt = lines.slice(Math.max(0, at - 4), at).filter((line) => line.trim());
  const frames = [];
  for (const line of lines.slice(at + 1)) {
    if (!/^\s+at /.test(line)) break;
    frames.push(line);
  }
  let reason = lines[at];
  if (reason.startsWith('FATAL ERROR: ')) excerpt = []; // the lines above are GC traces
  const compileTime = reason.startsWith('SyntaxError') && (frames.length === 0 || COMPILE_FRAME.test(frames[0]));
  let text = [header, ...excerpt, ...frames.filter((line) => !NODE_FRAME.test(line)).slice(0, 6)].join('\n');
  if (reason.startsWith('SyntaxError') && !compileTime) {
    // raised while running (JSON.parse, RegExp, eval...): not a compile error, so the word must not appear
    reason = 'Syntax error raised at run time, not a compile error' + reason.slice('SyntaxError'.length);
    text = text.replaceAll('SyntaxError', 'Syntax error');
  }
  return clip(text, MAX_TRACEBACK - reason.length, true) + '\n' + clip(reason, MAX_MESSAGE);
}

// The test file runs in a child process, whose peak RSS node cannot ask for once it has exited: sample the
// high-water mark (VmHWM) of this process's children while they run.
const SAMPLE_MS = 20;
let childPids = [];
let childPeakKb = 0;

function readOr(file, fallback) {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

function findChildren() {
  const pids = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readOr(`/proc/${entry}/stat`, '');
    if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid) pids.push(entry); // ppid
  }
  return pids;
}

function sampleChildren() {
  try {
    let alive = 0;
    for (const pid of childPids) {
      const match = /^VmHWM:\s+(\d+) kB/m.exec(readOr(`/proc/${pid}/status`, ''));
      if (match) {
        alive += 1;
        childPeakKb = Math.max(childPeakKb, Number(match[1]));
      }
    }
    if (alive === 0) childPids = findChildren();
  } catch {
    // /proc unreadable: no peak from the children
  }
}

setInterval(sampleChildren, SAMPLE_MS).unref();

function rusage() {
  sampleChildren();
  const own = process.resourceUsage();
  const stat = readOr('/proc/self/stat', '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields[0] is field 3 (state)
  const childCpu = (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS || 0; // cutime + cstime: reaped children
  const cpu = (own.userCPUTime + own.systemCPUTime) / 1e6 + childCpu;
  return { cpu_s: Math.round(cpu * 1e6) / 1e6, peak_memory_mb: Math.max(own.maxRSS, childPeakKb) / 1024 };
}

function writeResult(report) {
  if (RESULT_FD === undefined) {
    process.stderr.write('node_reporter: CET_RESULT_FD is not set; results not written\n');
    return;
  }
  const fd = Number(RESULT_FD);
  const data = Buffer.from(JSON.stringify(report), 'utf8');
  let written = 0;
  while (written < data.length) {
    try {
      written += fs.writeSync(fd, data, written, data.length - written);
    } catch (e) {
      if (e.code !== 'EAGAIN') throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5); // the reader is behind: wait, retry
    }
  }
  fs.closeSync(fd);
}

// One run per process: what the reporter has gathered, written once (at the end of the events, or when
// --test-force-exit ends the process first: node exits as soon as the event stream closes).
const cases = new Map(); // name -> case
const collectErrors = [];
let finished = false;

function finish() {
  if (finished) return;
  finished = true;
  const passed = [...cases.values()].filter((c) => c.outcome === 'passed').length;
  process.stdout.write(`# cet: ${passed} passed, ${cases.size - passed} not, ${collectErrors.length} file errors\n`);
  writeResult({ cases: [...cases.values()], collect_errors: collectErrors, rusage: rusage() });
}

process.once('exit', finish);

export default async function* cetReporter(source) {
  const names = []; // names[n]: the test started at nesting n, for "suite > test"
  const hasChildren = []; // hasChildren[n]: whether the test started at nesting n has started a subtest
  const stderrOf = new Map(); // file -> its child's stderr (capped)
  const doneFiles = new Set();

  for await (const event of source) {
    const data = event.data ?? {};
    const isFile = data.file !== undefined && data.name === data.file;
    switch (event.type) {
      case 'test:stdout':
        yield data.message;
        break;
      case 'test:stderr': {
        process.stderr.write(data.message);
        const kept = (stderrOf.get(data.file) ?? '') + data.message;
        stderrOf.set(data.file, kept.length > MAX_STDERR_KEPT ? kept.slice(-MAX_STDERR_KEPT) : kept); // the tail
        break;
      }
      case 'test:start':
        if (isFile) break;
        names[data.nesting] = data.name;
        names.length = data.nesting + 1;
        hasChildren[data.nesting] = false;
        if (data.nesting > 0) hasChildren[data.nesting - 1] = true;
        break;
      case 'test:complete': {
        if (!isFile || doneFiles.has(data.file)) break;
        doneFiles.add(data.file);
        const error = data.details?.error;
        if (!data.details?.passed && error?.failureType !== 'subtestsFailed') {
          collectErrors.push(fileFailure(data.file, error, stderrOf.get(data.file) ?? ''));
        } else if (cases.size === 0) { // e.g. the solution called process.exit(0) before anything was reported
          collectErrors.push(`${path.basename(data.file)}: the test file ended without reporting any test`);
        }
        break;
      }
      case 'test:pass':
      case 'test:fail': {
        if (isFile) break;
        const ownFailure = event.type === 'test:fail' && data.details?.error?.failureType !== 'subtestsFailed';
        if ((data.details?.type === 'suite' || hasChildren[data.nesting]) && !ownFailure) break; // a leaf
        // test counts; a suite or parent test only when it failed by itself (e.g. its body threw)
        const name = [...names.slice(0, data.nesting), data.name].join(' > ');
        const outcome = outcomeOf(event);
        const failure = event.type === 'test:fail' ? describeFailure(data.details?.error) : {};
        const found = { name, outcome, duration_s: Math.round((data.details?.duration_ms ?? 0) * 1000) / 1e6,
          error_type: null, message: null, traceback_tail: null, ...failure };
        const earlier = cases.get(name);
        if (!earlier || (earlier.outcome === 'passed' && outcome !== 'passed')) cases.set(name, found); // a
        // duplicated name keeps its worst outcome
        break;
      }
      default:
        break;
    }
  }
  finish();
}
