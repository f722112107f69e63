// tests/deploy/dockerfiles.test.mjs -- offline checks of deploy/docker/*.Dockerfile
// (no Docker engine is needed; nothing is built or pulled).
//
//   node tests/deploy/dockerfiles.test.mjs [build-dir]     (default: build)
//
// Prints one "ok" / "not ok" line per check (and "# ..." notes); exits 1 when
// any check fails, 2 on bad usage or a machine that cannot answer (no
// readelf / dpkg / pkg-config, binaries not built), 77 (skipped) when the
// build tree is an ASan/UBSan one, whose NEEDED lists differ from Release.
//
// 1. Shape: every service and migrate has a Dockerfile; multi-stage; a build
//    stage FROM debian:bookworm (or debian:12) that builds only its target
//    with CMake in Release; a runtime stage (the last) FROM
//    debian:bookworm-slim (or debian:12-slim); a numeric non-root USER; no
//    ADD of URLs; no ARG/ENV with a secret-looking name and a value;
//    apt-get install always with --no-install-recommends, apt lists removed;
//    the binary in /usr/local/bin as the ENTRYPOINT; EXPOSE = the ports of
//    the binary's *_LISTEN defaults (from its --config-json); COPY sources
//    exist and are not excluded by .dockerignore.
// 2. Packages: the runtime stage installs exactly the Debian packages that
//    own the binary's direct NEEDED libraries (readelf -d, resolved with ldd,
//    owner by dpkg -S), plus ca-certificates; the build stage installs exactly
//    build-essential, cmake, pkg-config, the package of every find_program()
//    and the -dev package of every pkg_check_modules() module of the
//    top-level CMakeLists.txt (all are REQUIRED at configure time, whatever
//    the target), the owner found with dpkg -S on the module's .pc file.
//    And each runtime library package is a dependency of some -dev package
//    the build stage installs (apt-cache depends), so the image links what
//    it was built against.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DOCKER_DIR = path.join(REPO, 'deploy/docker');

// image name -> CMake target and binary path in the build tree
const IMAGES = {
    'token-issuer': { target: 'token-issuer', bin: 'services/token-issuer/token-issuer' },
    'ingest-recorder': { target: 'ingest-recorder', bin: 'services/ingest-recorder/ingest-recorder' },
    'chunk-store': { target: 'chunk-store', bin: 'services/chunk-store/chunk-store' },
    'r2-uploader': { target: 'r2-uploader', bin: 'services/r2-uploader/r2-uploader' },
    muxer: { target: 'muxer', bin: 'services/muxer/muxer' },
    migrate: { target: 'seashore-migrate', bin: 'tools/migrate/seashore-migrate' },
};
// Libraries every debian:bookworm-slim image has (Priority: required).
const BASE_PACKAGES = new Set(['libc6', 'libgcc-s1', 'libstdc++6', 'zlib1g']);
// Runtime packages allowed beside the linked libraries: not linked, but
// needed at run time (TLS verification of R2, NATS and PostgreSQL).
const RUNTIME_EXTRAS = new Set(['ca-certificates']);
const BUILD_TOOLS = ['build-essential', 'cmake', 'pkg-config'];
const SECRET_NAME = /SECRET|PASSWORD|PASSWD|TOKEN|KEY|CREDENTIAL/i;

let failures = 0;
let n = 0;
function ok(cond, what, detail) {
    n++;
    if (cond) {
        console.log(`ok ${n} - ${what}`);
    } else {
        failures++;
        console.log(`not ok ${n} - ${what}`);
        if (detail) for (const l of String(detail).split('\n')) console.log(`#   ${l}`);
    }
    return cond;
}
const note = (s) => console.log(`# ${s}`);
function fatal(msg) {
    console.error(`dockerfiles.test: ${msg}`);
    process.exit(2);
}
function run(cmd, args, opts = {}) {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}
const sorted = (it) => [...it].sort();
const setDiff = (a, b) => sorted([...a].filter((x) => !b.has(x)));

// ---------------------------------------------------------------------------
// Dockerfile parsing: logical lines (backslash continuations joined, comment
// lines dropped, including those inside a continuation, as Docker does),
// instructions split into stages at each FROM.

export function parseDockerfile(text) {
    const raw = text.split(/\r?\n/);
    const instrs = [];
    let buf = null;
    let startLine = 0;
    for (let i = 0; i < raw.length; i++) {
        const line = raw[i];
        if (/^\s*#/.test(line) || (buf === null && /^\s*$/.test(line))) continue;
        if (buf === null) {
            buf = '';
            startLine = i + 1;
        }
        const m = /^(.*?)\\\s*$/.exec(line);
        if (m) {
            buf += m[1] + ' ';
            continue;
        }
        buf += line;
        instrs.push(toInstr(buf, startLine));
        buf = null;
    }
    if (buf !== null) instrs.push(toInstr(buf, startLine));
    const stages = [];
    for (const ins of instrs) {
        if (ins.cmd === 'FROM') {
            const words = ins.args.split(/\s+/).filter((w) => !w.startsWith('--'));
            const asIdx = words.findIndex((w) => w.toUpperCase() === 'AS');
            stages.push({
                image: words[0],
                name: asIdx >= 0 ? words[asIdx + 1] : null,
                line: ins.line,
                instrs: [],
            });
        } else if (stages.length) {
            stages[stages.length - 1].instrs.push(ins);
        } else {
            stages.push({ image: null, name: null, line: 0, instrs: [ins], preamble: true });
        }
    }
    return { instrs, stages: stages.filter((s) => !s.preamble) };
}

function toInstr(text, line) {
    const t = text.trim();
    const m = /^(\S+)\s*(.*)$/s.exec(t);
    return { cmd: m[1].toUpperCase(), args: m[2].trim(), line };
}

// Shell words of a RUN (good enough for apt-get lines: no quoting tricks).
function runCommands(runArgs) {
    return runArgs
        .split(/&&|\|\||;/)
        .map((c) => c.trim().split(/\s+/).filter(Boolean))
        .filter((w) => w.length);
}

// Packages named by `apt-get install` in a stage, and whether each install
// uses --no-install-recommends and the stage removes the apt lists.
function aptInstalls(stage) {
    const pkgs = new Set();
    const problems = [];
    for (const ins of stage.instrs.filter((i) => i.cmd === 'RUN')) {
        const cmds = runCommands(ins.args);
        let installed = false;
        for (const words of cmds) {
            // drop leading env assignments (DEBIAN_FRONTEND=...) and `env`
            let w = words;
            while (w.length && (/^[A-Z_][A-Z0-9_]*=/.test(w[0]) || w[0] === 'env')) w = w.slice(1);
            if (!(w[0] === 'apt-get' || w[0] === 'apt')) continue;
            const subIdx = w.findIndex((x, i) => i > 0 && !x.startsWith('-'));
            const sub = w[subIdx];
            if (sub !== 'install') continue;
            installed = true;
            if (!w.includes('--no-install-recommends'))
                problems.push(`line ${ins.line}: apt-get install without --no-install-recommends`);
            for (const x of w.slice(subIdx + 1)) if (!x.startsWith('-')) pkgs.add(x.replace(/=.*$/, ''));
        }
        if (installed && !/rm\s+-rf?\s+\/var\/lib\/apt\/lists\/\*/.test(ins.args))
            problems.push(`line ${ins.line}: apt-get install whose RUN does not rm -rf /var/lib/apt/lists/*`);
    }
    return { pkgs, problems };
}

// ARG / ENV key=value pairs (ENV also in the legacy `ENV KEY value` form).
function keyValues(ins) {
    const out = [];
    if (ins.cmd === 'ARG') {
        for (const w of ins.args.split(/\s+/).filter(Boolean)) {
            const eq = w.indexOf('=');
            out.push(eq < 0 ? { key: w, value: null } : { key: w.slice(0, eq), value: w.slice(eq + 1) });
        }
    } else if (ins.cmd === 'ENV') {
        if (!/^[^\s=]+=/.test(ins.args)) {
            const m = /^(\S+)\s+(.*)$/.exec(ins.args);
            if (m) out.push({ key: m[1], value: m[2] });
        } else {
            const re = /([^\s=]+)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g;
            let m;
            while ((m = re.exec(ins.args))) out.push({ key: m[1], value: m[2] });
        }
    }
    return out;
}

// Exec-form JSON array or shell form -> words.
function execWords(args) {
    if (args.startsWith('[')) {
        try {
            return JSON.parse(args);
        } catch {
            return null;
        }
    }
    return args.split(/\s+/);
}

// COPY/ADD: flags, sources, destination.
function copyParts(ins) {
    let words = execWords(ins.args) ?? [];
    const flags = {};
    while (words.length && words[0].startsWith('--')) {
        const m = /^--([^=]+)(?:=(.*))?$/.exec(words[0]);
        flags[m[1]] = m[2] ?? true;
        words = words.slice(1);
    }
    return { flags, srcs: words.slice(0, -1), dest: words[words.length - 1] };
}

// .dockerignore (Go filepath.Match per path segment, ** for any depth,
// ! exceptions): is a context path excluded?
function dockerignoreMatcher(text) {
    const rules = text
        .split(/\r?\n/)
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('#'))
        .map((l) => {
            const neg = l.startsWith('!');
            let p = path.posix.normalize((neg ? l.slice(1) : l).trim()).replace(/^\/+|\/+$/g, '');
            let re = '';
            for (let i = 0; i < p.length; i++) {
                const c = p[i];
                if (c === '*' && p[i + 1] === '*') {
                    re += '.*';
                    i++;
                    if (p[i + 1] === '/') i++;
                } else if (c === '*') re += '[^/]*';
                else if (c === '?') re += '[^/]';
                else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
            }
            // a pattern also excludes everything under a matching directory
            return { neg, re: new RegExp(`^${re}(/.*)?$`) };
        });
    return (p) => {
        let excluded = false;
        for (const r of rules) if (r.re.test(p)) excluded = !r.neg;
        return excluded;
    };
}

// Files (relative, posix) under a repository path, skipping nothing.
function listFiles(rel) {
    const abs = path.join(REPO, rel);
    if (!existsSync(abs)) return [];
    if (!statSync(abs).isDirectory()) return [rel];
    const out = [];
    const walk = (d) => {
        for (const e of readdirSyncSafe(path.join(REPO, d))) {
            const r = d ? `${d}/${e.name}` : e.name;
            if (e.isDirectory()) walk(r);
            else out.push(r);
        }
    };
    walk(rel.replace(/\/+$/, ''));
    return out;
}
function readdirSyncSafe(d) {
    try {
        return readdirSync(d, { withFileTypes: true });
    } catch {
        return [];
    }
}

// ---------------------------------------------------------------------------
// What the machine says: Debian package of a file, NEEDED libraries, the
// pkg-config modules of the top-level CMakeLists.txt.

const dpkgCache = new Map();
function debianPackageOf(file) {
    if (dpkgCache.has(file)) return dpkgCache.get(file);
    let pkg = null;
    for (const f of [file, existsSync(file) ? realpathSync(file) : null].filter(Boolean)) {
        // /lib is a symlink to /usr/lib on Debian 12 (merged /usr): try both spellings
        const candidates = [f, f.replace(/^\/usr\/lib\//, '/lib/'), f.replace(/^\/lib\//, '/usr/lib/')];
        for (const c of candidates) {
            try {
                const out = run('dpkg', ['-S', c]).split('\n')[0];
                pkg = out.slice(0, out.indexOf(': ')).split(',')[0].trim().replace(/:.*$/, '');
                break;
            } catch {
                /* try the next spelling */
            }
        }
        if (pkg) break;
    }
    dpkgCache.set(file, pkg);
    return pkg;
}

function neededPackages(binary) {
    const dyn = run('readelf', ['-d', binary]);
    const needed = [...dyn.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
    const resolved = new Map();
    for (const l of run('ldd', [binary]).split('\n')) {
        const m = /^\s*(\S+)\s+=>\s+(\/\S+)/.exec(l);
        if (m) resolved.set(m[1], m[2]);
    }
    const pkgs = new Map(); // package -> sonames
    const unresolved = [];
    for (const so of needed) {
        const p = resolved.get(so);
        const pkg = p && debianPackageOf(p);
        if (!pkg) {
            unresolved.push(so);
            continue;
        }
        if (!pkgs.has(pkg)) pkgs.set(pkg, []);
        pkgs.get(pkg).push(so);
    }
    return { needed, pkgs, unresolved };
}

// pkg_check_modules(PREFIX [REQUIRED] [IMPORTED_TARGET] mod...) and
// find_program(VAR name ...) of the top-level CMakeLists.txt.
function cmakeRequirements() {
    const text = readFileSync(path.join(REPO, 'CMakeLists.txt'), 'utf8').replace(/#[^\n]*/g, '');
    const modules = [];
    for (const m of text.matchAll(/pkg_check_modules\s*\(([^)]*)\)/g)) {
        const words = m[1].split(/\s+/).filter(Boolean).slice(1);
        for (const w of words) {
            if (['REQUIRED', 'QUIET', 'IMPORTED_TARGET', 'GLOBAL', 'NO_CMAKE_PATH', 'NO_CMAKE_ENVIRONMENT_PATH'].includes(w))
                continue;
            modules.push(w.replace(/[<>=].*$/, ''));
        }
    }
    const programs = [];
    for (const m of text.matchAll(/find_program\s*\(([^)]*)\)/g)) {
        const words = m[1].split(/\s+/).filter(Boolean);
        const names = [];
        for (const w of words.slice(1)) {
            if (/^[A-Z_]+$/.test(w)) break; // REQUIRED, NAMES, PATHS, ...
            names.push(w);
        }
        programs.push(...names);
    }
    return { modules, programs };
}

function pkgConfigDevPackage(module) {
    const pc = run('pkg-config', ['--path', module]).trim();
    return { pc, pkg: debianPackageOf(pc) };
}

function programPackage(name) {
    let p;
    try {
        p = run('sh', ['-c', `command -v "$1"`, 'sh', name]).trim();
    } catch {
        return null;
    }
    return debianPackageOf(p);
}

// Libraries the target links, from its link line (informational).
function targetModules(buildDir, binRel, target, modules) {
    const link = path.join(buildDir, path.dirname(binRel), 'CMakeFiles', `${target}.dir`, 'link.txt');
    if (!existsSync(link)) return null;
    const text = readFileSync(link, 'utf8');
    const used = [];
    for (const mod of modules) {
        // -lfoo, or the full path CMake's imported targets write (/.../libfoo.so)
        const libs = run('pkg-config', ['--libs-only-l', mod]).trim().split(/\s+/).filter(Boolean)
            .map((l) => l.replace(/^-l/, '').replace(/[.+]/g, '\\$&'));
        if (libs.some((l) => new RegExp(`(^|\\s)(-l${l}|\\S*/lib${l}\\.(so|a))(\\s|$)`).test(text))) used.push(mod);
    }
    return used;
}

// Depends of each package, one apt-cache call for all (each call rebuilds
// apt's cache on machines without pkgcache.bin: seconds apiece). Memoised.
const aptDependsCache = new Map();
function aptDepends(pkgs) {
    const todo = pkgs.filter((p) => !aptDependsCache.has(p));
    if (todo.length) {
        let out;
        try {
            out = run('apt-cache', ['depends', '--no-recommends', '--no-suggests', ...todo]);
        } catch {
            return null;
        }
        let cur = null;
        for (const l of out.split('\n')) {
            if (/^\S/.test(l)) {
                cur = l.trim();
                if (!aptDependsCache.has(cur)) aptDependsCache.set(cur, new Set());
            } else if (cur) {
                const m = /^\s*\|?Depends: <?([^\s>]+)/.exec(l);
                if (m) aptDependsCache.get(cur).add(m[1]);
            }
        }
    }
    if (pkgs.some((p) => !aptDependsCache.has(p))) return null;
    return new Set(pkgs.flatMap((p) => [...aptDependsCache.get(p)]));
}

// Ports of the *_LISTEN variables' defaults in `<binary> --config-json`.
function listenPorts(binary) {
    let cfg;
    try {
        cfg = JSON.parse(run(binary, ['--config-json']));
    } catch {
        return null;
    }
    const ports = new Set();
    for (const v of cfg.variables ?? []) {
        if (v.type === 'listen' || /_LISTEN$/.test(v.name)) {
            const m = /:(\d+)$/.exec(String(v.default ?? ''));
            if (m) ports.add(m[1]);
        }
    }
    return ports;
}

// ---------------------------------------------------------------------------

const args = process.argv.slice(2);
if (args.includes('-h') || args.includes('--help')) {
    console.log('usage: node tests/deploy/dockerfiles.test.mjs [build-dir]');
    process.exit(0);
}
const buildDir = path.resolve(args[0] ?? path.join(REPO, 'build'));
for (const tool of ['readelf', 'ldd', 'dpkg', 'pkg-config']) {
    try {
        run('sh', ['-c', `command -v ${tool}`]);
    } catch {
        fatal(`${tool} is not installed (Debian 12 with the build dependencies is assumed)`);
    }
}
for (const [img, { bin }] of Object.entries(IMAGES)) {
    const b = path.join(buildDir, bin);
    if (!existsSync(b)) fatal(`${b} is missing (build ${img} first)`);
    // A sanitizer build links more (libasan keeps libraries --as-needed would
    // drop, e.g. libxml2 and libcap): its NEEDED list is not the images'.
    if (/\(NEEDED\)\s+Shared library: \[lib(asan|ubsan|tsan|lsan)\.so/.test(run('readelf', ['-d', b])))
    {
        console.log(`# SKIP ${buildDir} is a sanitizer build (${bin} needs libasan/libubsan); pass a release build tree (build/ or build-release/)`);
        process.exit(77); // ctest: SKIP_RETURN_CODE 77
    }
}

const ignoreFile = path.join(REPO, '.dockerignore');
ok(existsSync(ignoreFile), '.dockerignore exists at the repository root');
const ignored = dockerignoreMatcher(existsSync(ignoreFile) ? readFileSync(ignoreFile, 'utf8') : '');
for (const p of ['build/CMakeCache.txt', 'build-asan/x', 'node_modules/ws/index.js', '.git/HEAD', '.dev/x', 'bench/results/x.md'])
    ok(ignored(p), `.dockerignore excludes ${p.split('/')[0] === 'bench' ? 'bench/results' : p.split('/')[0]}`);

const req = cmakeRequirements();
const devByModule = new Map();
for (const mod of req.modules) {
    const { pc, pkg } = pkgConfigDevPackage(mod);
    ok(!!pkg, `pkg-config module ${mod} (${pc}) belongs to a Debian package (${pkg})`);
    devByModule.set(mod, pkg);
}
const programPkgs = new Map(req.programs.map((p) => [p, programPackage(p)]));
for (const [p, pkg] of programPkgs) ok(!!pkg, `find_program ${p} belongs to a Debian package (${pkg})`);
const expectedBuild = new Set([...BUILD_TOOLS, ...devByModule.values(), ...programPkgs.values()].filter(Boolean));
note(`build stage packages (all REQUIRED at configure time): ${sorted(expectedBuild).join(' ')}`);

for (const [img, { target, bin }] of Object.entries(IMAGES)) {
    const file = path.join(DOCKER_DIR, `${img}.Dockerfile`);
    const rel = path.relative(REPO, file);
    if (!ok(existsSync(file), `${rel} exists`)) continue;
    const { instrs, stages } = parseDockerfile(readFileSync(file, 'utf8'));
    const binary = path.join(buildDir, bin);

    ok(stages.length >= 2, `${img}: multi-stage (${stages.length} stages)`);
    const runtime = stages[stages.length - 1];
    ok(/^debian:(bookworm|12)-slim$/.test(runtime?.image ?? ''), `${img}: runtime stage FROM debian:bookworm-slim (${runtime?.image})`);
    const buildStages = stages.filter((s) => /^debian:(bookworm|12)$/.test(s.image));
    const build = buildStages.find((s) => s.instrs.some((i) => i.cmd === 'RUN' && /cmake\s+--build/.test(i.args)));
    if (!ok(!!build, `${img}: a build stage FROM debian:bookworm (or debian:12) runs cmake --build`)) continue;
    const buildRuns = build.instrs.filter((i) => i.cmd === 'RUN').map((i) => i.args).join('\n');
    ok(/-DCMAKE_BUILD_TYPE=Release\b/.test(buildRuns), `${img}: configured with -DCMAKE_BUILD_TYPE=Release`);
    const targets2 = [...buildRuns.matchAll(/--target\s+([^\s&;|]+)/g)].map((m) => m[1]);
    ok(targets2.length === 1 && targets2[0] === target && !/--target\s+\S+\s+[^-\s&;|]/.test(buildRuns),
        `${img}: builds only the target ${target} (--target ${targets2.join(', ') || 'none'})`);

    // every FROM image pinned by a tag (no :latest, no bare name)
    for (const s of stages) {
        const stageRef = stages.find((x) => x.name && x.name === s.image);
        ok(stageRef || (/:[^:/]+$/.test(s.image) && !/:latest$/.test(s.image)), `${img}: FROM ${s.image} is pinned by a tag`);
    }

    // USER: numeric, non-root, the last USER of the runtime stage, after the last RUN
    const users = runtime.instrs.filter((i) => i.cmd === 'USER');
    const lastUser = users[users.length - 1];
    const uid = lastUser && /^(\d+)(?::(\d+))?$/.exec(lastUser.args);
    ok(!!uid && uid[1] !== '0' && uid[2] !== '0', `${img}: runtime stage ends with a numeric non-root USER (${lastUser?.args ?? 'none'})`);
    const lastRun = runtime.instrs.map((i) => i.cmd).lastIndexOf('RUN');
    ok(lastUser && runtime.instrs.indexOf(lastUser) > lastRun, `${img}: no RUN after the USER`);

    // no ADD of URLs, no secret-looking ARG/ENV with a value
    const addUrls = instrs.filter((i) => i.cmd === 'ADD' && /(^|\s)(https?|ftp|git):\/\/|(^|\s)git@/.test(i.args));
    ok(addUrls.length === 0, `${img}: no ADD of a URL`, addUrls.map((i) => `line ${i.line}: ADD ${i.args}`).join('\n'));
    const secrets = [];
    for (const ins of instrs.filter((i) => i.cmd === 'ARG' || i.cmd === 'ENV')) {
        for (const { key, value } of keyValues(ins))
            if (SECRET_NAME.test(key) && value !== null && value !== '' && value !== '""' && value !== "''")
                secrets.push(`line ${ins.line}: ${ins.cmd} ${key}=...`);
    }
    ok(secrets.length === 0, `${img}: no ARG/ENV with a secret-looking name and a value`, secrets.join('\n'));

    // apt hygiene in every Debian stage
    const aptProblems = stages.flatMap((s) => aptInstalls(s).problems);
    ok(aptProblems.length === 0, `${img}: apt-get install --no-install-recommends, apt lists removed`, aptProblems.join('\n'));

    // COPY sources exist in the repository and are not excluded by .dockerignore
    const copyProblems = [];
    for (const s of stages) {
        for (const ins of s.instrs.filter((i) => i.cmd === 'COPY' || i.cmd === 'ADD')) {
            const { flags, srcs } = copyParts(ins);
            if (flags.from) continue;
            for (const src of srcs) {
                const clean = src.replace(/^\.\/|\/+$/g, '') || '.';
                const dir = clean.includes('*') ? path.posix.dirname(clean) : clean;
                const files = listFiles(dir).filter((f) =>
                    clean.includes('*') ? dockerignoreMatcher(clean)(f) : true);
                if (files.length === 0) copyProblems.push(`line ${ins.line}: ${src} matches nothing in the repository`);
                else if (files.every((f) => ignored(f))) copyProblems.push(`line ${ins.line}: ${src} is excluded by .dockerignore`);
            }
        }
    }
    ok(copyProblems.length === 0, `${img}: every COPY source exists and is in the build context`, copyProblems.join('\n'));

    // the binary in /usr/local/bin, ENTRYPOINT on it
    const binName = path.basename(bin);
    const copied = runtime.instrs.filter((i) => i.cmd === 'COPY').map(copyParts)
        .find((c) => c.flags.from && c.srcs.some((s) => s.endsWith(`/${bin}`)));
    ok(!!copied && copied.flags.from === build.name && [`/usr/local/bin/${binName}`, '/usr/local/bin/'].includes(copied.dest),
        `${img}: COPY --from=${build.name} of build/${bin} to /usr/local/bin/${binName}`);
    const ep = runtime.instrs.filter((i) => i.cmd === 'ENTRYPOINT').pop();
    const epWords = ep && execWords(ep.args);
    ok(!!ep && ep.args.startsWith('[') && epWords?.[0] === `/usr/local/bin/${binName}`, `${img}: ENTRYPOINT ["/usr/local/bin/${binName}"] (exec form)`);

    // EXPOSE = the ports of the binary's *_LISTEN defaults
    const exposed = new Set(runtime.instrs.filter((i) => i.cmd === 'EXPOSE')
        .flatMap((i) => i.args.split(/\s+/)).map((p) => p.replace(/\/tcp$/, '')));
    const ports = listenPorts(binary);
    if (ports) ok(setDiff(ports, exposed).length === 0 && setDiff(exposed, ports).length === 0,
        `${img}: EXPOSE ${sorted(exposed).join(' ') || '(none)'} = ports of its *_LISTEN defaults (${sorted(ports).join(' ') || 'none'})`);
    else note(`${img}: ${binName} has no --config-json; EXPOSE ${sorted(exposed).join(' ') || '(none)'} not compared`);

    // --- packages: runtime = owners of the direct NEEDED libraries (+ ca-certificates)
    const { needed, pkgs: neededPkgs, unresolved } = neededPackages(binary);
    ok(unresolved.length === 0, `${img}: every NEEDED library resolves to a Debian package`, unresolved.join(' '));
    const expectedRuntime = new Set([...neededPkgs.keys()].filter((p) => !BASE_PACKAGES.has(p)));
    note(`${img}: NEEDED ${needed.join(' ')}`);
    note(`${img}: runtime packages expected: ${sorted(expectedRuntime).join(' ')}`);
    const { pkgs: runtimePkgs } = aptInstalls(runtime);
    const missing = setDiff(expectedRuntime, runtimePkgs);
    const extra = setDiff(runtimePkgs, new Set([...expectedRuntime, ...RUNTIME_EXTRAS]));
    ok(missing.length === 0, `${img}: runtime stage installs every linked library's package`, `missing: ${missing.join(' ')}`);
    const devExtra = extra.filter((p) => /-dev$/.test(p) || expectedBuild.has(p));
    ok(devExtra.length === 0, `${img}: runtime stage installs no -dev package or build tool`, `extra: ${devExtra.join(' ')}`);
    ok(extra.length === 0, `${img}: runtime stage installs nothing else (allowed beside the libraries: ${sorted(RUNTIME_EXTRAS).join(' ')})`,
        `extra: ${extra.join(' ')}`);

    // --- packages: build = tools + every REQUIRED module's -dev package + protoc-c's package
    const buildPkgs = new Set(buildStages.flatMap((s) => [...aptInstalls(s).pkgs]));
    const bMissing = setDiff(expectedBuild, buildPkgs);
    const bExtra = setDiff(buildPkgs, expectedBuild);
    ok(bMissing.length === 0, `${img}: build stage installs the tools and every REQUIRED pkg-config module's -dev package`,
        `missing: ${bMissing.join(' ')}`);
    ok(bExtra.length === 0, `${img}: build stage installs nothing else`, `extra: ${bExtra.join(' ')}`);
    const used = targetModules(buildDir, bin, target, req.modules);
    if (used) note(`${img}: ${target} links the modules ${used.join(' ')} (-dev: ${used.map((m) => devByModule.get(m)).join(' ')})`);

    // --- each runtime library package is what some installed -dev package depends on
    const devDeps = aptDepends(sorted(buildPkgs).filter((p) => /-dev$/.test(p)));
    const aptOk = devDeps !== null;
    if (aptOk) {
        const orphan = setDiff(expectedRuntime, devDeps).filter((p) => !BASE_PACKAGES.has(p));
        ok(orphan.length === 0, `${img}: each runtime library package is a dependency of a -dev package of the build stage`,
            `not depended on: ${orphan.join(' ')}`);
    } else {
        note(`${img}: apt-cache depends unavailable; runtime/-dev correspondence not checked`);
    }
}

// The token-issuer image carries the studio (web/vendor built in a node stage).
{
    const file = path.join(DOCKER_DIR, 'token-issuer.Dockerfile');
    if (existsSync(file)) {
        const { stages } = parseDockerfile(readFileSync(file, 'utf8'));
        const web = stages.find((s) => /^node:20-bookworm-slim$/.test(s.image));
        const runs = web ? web.instrs.filter((i) => i.cmd === 'RUN').map((i) => i.args).join('\n') : '';
        ok(!!web && /npm ci\b/.test(runs) && /scripts\/web-build\.sh/.test(runs),
            'token-issuer: a node:20-bookworm-slim stage runs npm ci and scripts/web-build.sh');
        const runtime = stages[stages.length - 1];
        const webCopy = runtime.instrs.filter((i) => i.cmd === 'COPY').map(copyParts)
            .find((c) => web && c.flags.from === web.name);
        const envRoot = runtime.instrs.filter((i) => i.cmd === 'ENV').flatMap(keyValues).find((kv) => kv.key === 'WEB_ROOT');
        ok(!!webCopy && !!envRoot && envRoot.value.replace(/\/+$/, '') === webCopy.dest.replace(/\/+$/, ''),
            `token-issuer: the studio is copied to WEB_ROOT (${webCopy?.dest} , WEB_ROOT=${envRoot?.value})`);
    }
}

// The migrate image carries the SQL files and points the runner at them.
{
    const file = path.join(DOCKER_DIR, 'migrate.Dockerfile');
    if (existsSync(file)) {
        const { stages } = parseDockerfile(readFileSync(file, 'utf8'));
        const runtime = stages[stages.length - 1];
        const mig = runtime.instrs.filter((i) => i.cmd === 'COPY').map(copyParts)
            .find((c) => !c.flags.from && c.srcs.some((s) => /^(\.\/)?migrations(\/|$)/.test(s)));
        ok(!!mig && mig.dest.replace(/\/+$/, '') === '/migrations', 'migrate: migrations/ copied to /migrations');
        const env = runtime.instrs.filter((i) => i.cmd === 'ENV').flatMap(keyValues).find((kv) => kv.key === 'MIGRATIONS_DIR');
        const cmd = runtime.instrs.filter((i) => i.cmd === 'CMD' || i.cmd === 'ENTRYPOINT').map((i) => i.args).join(' ');
        ok(env?.value === '/migrations' || /--dir",?\s*"?\/migrations/.test(cmd), 'migrate: the runner reads /migrations (MIGRATIONS_DIR or --dir)');
    }
}

// No stray Dockerfile for an image this test does not know.
{
    const known = new Set(Object.keys(IMAGES).map((i) => `${i}.Dockerfile`));
    const extra = readdirSyncSafe(DOCKER_DIR).map((e) => e.name).filter((f) => f.endsWith('.Dockerfile') && !known.has(f));
    ok(extra.length === 0, 'deploy/docker has no Dockerfile this test does not check', extra.join(' '));
}

console.log(`1..${n}`);
if (failures) {
    console.log(`# ${failures} of ${n} checks failed`);
    process.exit(1);
}
console.log(`# all ${n} checks passed`);
