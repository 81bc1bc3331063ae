"""certwiz against raw openssl and easy-rsa, same work, same run: `make bench`.

    .venv/bin/python bench/run.py [--runs 7] [--fleet 1000] [--sizes 1000,10000,100000]
    .venv/bin/python bench/run.py --smoke      # tiny sizes, one run: does every case work?

Every case runs in fresh temporary directories; contenders alternate (bench/harness.py).
Prints a table per case and writes bench/results.md (or --out). bench/README.md explains
each case. Never part of `make test`; tests/test_bench.py runs --smoke.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import certwiz
from bench.gen_profile import generate
from bench.harness import Contender, Result, Runner, alternate, machine
from certwiz import ca, database
from certwiz.profile import Profile

EASYRSA = os.environ.get("EASYRSA", "/usr/share/easy-rsa/easyrsa")
CERTWIZ = [sys.executable, "-m", "certwiz"]
EASYRSA_EC = ["--use-algo=ec", "--curve=prime256v1"]
EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
RSA = ["-newkey", "rsa:2048"]
P12_NOPASS = ["-passout", "pass:", "-certpbe", "NONE", "-keypbe", "NONE", "-nomac"]
BASELINE: Path | None = None  # --baseline DIR: a checkout of an older certwiz, to compare


def run_certwiz(r: Runner, *args: str | Path, baseline: bool = False) -> None:
    """`python -m certwiz ARGS`; `baseline`: the certwiz of --baseline DIR (PYTHONPATH)."""
    if not baseline:
        r.run([*CERTWIZ, *args])
        return
    env, r.env = r.env, {**r.env, "PYTHONPATH": str(BASELINE)}
    try:
        r.run([*CERTWIZ, *args])
    finally:
        r.env = env


def baseline_of(name: str, work: Callable[[Runner, int, bool], None]) -> list[Contender]:
    """With --baseline: the contender NAME (baseline), the same work by the older certwiz."""
    if BASELINE is None:
        return []
    return [(f"{name} (baseline)", None, lambda r, i: work(r, i, True))]


def with_baseline(
    contenders: list[Contender], name: str, work: Callable[[Runner, int, bool], None]
) -> list[Contender]:
    """CONTENDERS, NAME (this certwiz), then NAME (baseline) with --baseline."""
    mine: Contender = (name, None, lambda r, i: work(r, i, False))
    return [*contenders, mine, *baseline_of(name, work)]


class Bench:
    def __init__(self, root: Path, runs: int) -> None:
        self.root, self.runs = root, runs
        own = ("CERTWIZ_", "EASYRSA")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
        self.results: list[Result] = []
        self.notes: dict[str, str] = {}

    def case(self, name: str, contenders: list[Contender], runs: int | None = None) -> None:
        print(f"== {name}", flush=True)
        found = alternate(name, contenders, runs or self.runs, self.env, self.root)
        self.results += found
        base = found[0].median
        for r in found:
            print(
                f"  {r.contender:34} median {r.median * 1000:9.1f} ms  "
                f"[{r.low * 1000:.1f}-{r.high * 1000:.1f}]  cpu {r.cpu * 1000:8.1f} ms  "
                f"x{r.median / base:6.2f}  rss {r.max_rss_mb:6.1f} MB",
                flush=True,
            )

    # --- the three ways to a CA -------------------------------------------------------

    def certwiz_ca(self, home: Path, name: str, key_type: str = "ec:P-256") -> Profile:
        home.mkdir(parents=True, exist_ok=True)
        return ca.init(name, home, ca.CAOptions(key_type=key_type))

    def easyrsa_env(self, pki: Path) -> dict[str, str]:
        return {**self.env, "EASYRSA_PKI": str(pki), "EASYRSA_BATCH": "1"}

    def easyrsa(self, runner: Runner, pki: Path, *args: str) -> None:
        env, runner.env = runner.env, self.easyrsa_env(pki)
        try:
            runner.run([EASYRSA, *args])
        finally:
            runner.env = env


def raw_client(runner: Runner, profile: Profile, work: Path, name: str, key: list[str]) -> None:
    """The minimal raw sequence certwiz wraps: key+CSR, sign, PKCS#12 without password."""
    work.mkdir(parents=True, exist_ok=True)
    k, csr, crt, p12 = (work / f"{name}.{x}" for x in ("key", "csr", "crt", "p12"))
    runner.run(["openssl", "req", "-new", *key, "-nodes", "-keyout", k, "-subj", f"/CN={name}",
                "-out", csr])  # fmt: skip
    runner.run(["openssl", "ca", "-batch", "-config", profile.cnf, "-in", csr, "-out", crt,
                "-notext", "-extensions", "client_ext", "-days", "365"])  # fmt: skip
    runner.run(["openssl", "pkcs12", "-export", "-inkey", k, "-in", crt, "-certfile",
                profile.ca_cert, "-name", name, "-out", p12, *P12_NOPASS])  # fmt: skip


def serial_of(profile: Profile, name: str) -> str:
    for line in profile.index.read_text().splitlines():
        fields = line.split("\t")
        if fields[0] == "V" and fields[5] == f"/CN={name}":
            return fields[3]
    raise LookupError(name)


def startup(b: Bench) -> None:
    home = b.root / "startup"
    small = b.certwiz_ca(home, "small")
    for n in range(3):
        Runner({**b.env, "CERTWIZ_HOME": str(home)}, b.root).run(
            [*CERTWIZ, "client", "issue", "-p", small.name, "-n", f"c{n}", "-u"]
        )
    env = {"CERTWIZ_HOME": str(home)}

    def proc(argv: list[str]) -> Callable[[Runner, int], None]:
        def work(r: Runner, _i: int) -> None:
            r.env = {**r.env, **env}
            r.run(argv)

        return work

    b.case(
        "start-up",
        [
            ("python -c pass", None, proc([sys.executable, "-c", "pass"])),
            ("certwiz --version", None, proc([*CERTWIZ, "--version"])),
            ("certwiz list (3 certificates)", None, proc([*CERTWIZ, "list", "-p", "small"])),
            ("certwiz list --help", None, proc([*CERTWIZ, "list", "--help"])),
        ],
    )


def ca_init(b: Bench) -> None:
    base = b.root / "ca-init"
    template = b.certwiz_ca(base / "template", "tmpl")

    def certwiz_work(r: Runner, i: int) -> None:
        r.run([*CERTWIZ, "ca", "init", "-p", f"p{i}", "--home", base / "certwiz"])

    def raw_prepare(i: int) -> None:
        d = base / "raw" / f"p{i}"
        for sub in ("newcerts", "private"):
            (d / sub).mkdir(parents=True)
        cnf = ca.render_cnf(Profile(f"p{i}", d.parent), d, "ec:P-256", 90)
        (d / "openssl.cnf").write_text(cnf)
        (d / "index.txt").write_text("")
        (d / "serial").write_text(template.serial.read_text())
        (d / "crlnumber").write_text("01\n")

    def raw_work(r: Runner, i: int) -> None:
        d = base / "raw" / f"p{i}"
        r.run(["openssl", "req", "-x509", *EC, "-nodes", "-keyout", d / "private/ca.key",
               "-subj", f"/CN=p{i} Root CA", "-days", "3650", "-config", d / "openssl.cnf",
               "-extensions", "v3_ca", "-out", d / "ca.crt"])  # fmt: skip
        r.run(["openssl", "ca", "-gencrl", "-batch", "-config", d / "openssl.cnf",
               "-out", d / "crl.pem"])  # fmt: skip

    def easyrsa_work(r: Runner, i: int) -> None:
        pki = base / "easyrsa" / f"p{i}"
        b.easyrsa(r, pki, "init-pki")
        b.easyrsa(
            r, pki, "--use-algo=ec", "--curve=prime256v1", "--req-cn=bench", "build-ca", "nopass"
        )

    b.case(
        "CA init (EC P-256)",
        [
            ("certwiz ca init", None, certwiz_work),
            ("raw openssl (req -x509, ca -gencrl)", raw_prepare, raw_work),
            ("easy-rsa init-pki + build-ca", None, easyrsa_work),
        ],
    )


def with_cas(b: Bench, tag: str) -> tuple[Profile, Profile, Path]:
    """One certwiz CA, one raw openssl ca directory (made by certwiz: same files), one PKI."""
    base = b.root / tag
    mine = b.certwiz_ca(base / "certwiz", "p")
    raw = b.certwiz_ca(base / "raw", "p")
    pki = base / "easyrsa"
    setup = Runner(b.easyrsa_env(pki), b.root)
    setup.run([EASYRSA, "init-pki"])
    setup.run(
        [EASYRSA, "--use-algo=ec", "--curve=prime256v1", "--req-cn=bench", "build-ca", "nopass"]
    )
    return mine, raw, pki


def one_client(b: Bench, rsa: bool) -> None:
    tag = "client-rsa" if rsa else "client-ec"
    mine, raw, pki = with_cas(b, tag)
    key_type = ["--key-type", "rsa:2048"] if rsa else []
    algo = ["--use-algo=rsa", "--keysize=2048"] if rsa else ["--use-algo=ec", "--curve=prime256v1"]

    def certwiz_work(r: Runner, i: int, baseline: bool = False) -> None:
        run_certwiz(r, "client", "issue", "-p", "p", "-n", f"c{i}{'b' * baseline}", "-u",
                    *key_type, "--home", mine.home, baseline=baseline)  # fmt: skip

    def raw_work(r: Runner, i: int) -> None:
        raw_client(r, raw, b.root / tag / "raw-out", f"c{i}", RSA if rsa else EC)

    def easyrsa_work(r: Runner, i: int) -> None:
        b.easyrsa(r, pki, *algo, "build-client-full", f"c{i}", "nopass")
        b.easyrsa(r, pki, "export-p12", f"c{i}", "nopass")

    b.case(
        f"one {'RSA-2048' if rsa else 'EC P-256'} client with PKCS#12 (no password)",
        [
            ("certwiz client issue -u", None, certwiz_work),
            ("raw openssl (req, ca, pkcs12)", None, raw_work),
            ("easy-rsa build-client-full+export-p12", None, easyrsa_work),
            *baseline_of("certwiz client issue -u", certwiz_work),
            *floors(),
        ],
    )


def floors(index: Path | None = None) -> list[Contender]:
    """What any certwiz command pays before its own work, measured in the same run: Python
    with Typer imported, and (given INDEX) with certwiz's one read of that index.txt.
    A target whose budget is below a floor cannot be met by a Typer command."""

    def python(code: str) -> Callable[[Runner, int], None]:
        return lambda r, _i: r.run([sys.executable, "-c", code])

    rows: list[Contender] = [("floor: python -c 'import typer'", None, python("import typer"))]
    if index is not None:
        code = (
            "import typer, pathlib; from certwiz import database; "
            f"database.read(pathlib.Path({str(index)!r}))"
        )
        rows.append(("floor: import typer + read index.txt once", None, python(code)))
    return rows


def revoke(b: Bench) -> None:
    mine, raw, pki = with_cas(b, "revoke")
    out = b.root / "revoke" / "raw-out"

    def certwiz_prepare(i: int) -> None:
        Runner({**b.env, "CERTWIZ_HOME": str(mine.home)}, b.root).run(
            [*CERTWIZ, "client", "issue", "-p", "p", "-n", f"c{i}", "-u"]
        )

    def certwiz_work(r: Runner, i: int) -> None:
        r.run([*CERTWIZ, "revoke", "-p", "p", "-n", f"c{i}", "--home", mine.home])

    def raw_prepare(i: int) -> None:
        raw_client(Runner(b.env, b.root), raw, out, f"c{i}", EC)

    def raw_work(r: Runner, i: int) -> None:
        serial = serial_of(raw, f"c{i}")
        r.run(["openssl", "ca", "-batch", "-config", raw.cnf, "-revoke",
               raw.newcert_path(serial), "-crl_reason", "unspecified"])  # fmt: skip
        r.run(["openssl", "ca", "-gencrl", "-batch", "-config", raw.cnf, "-out", raw.crl])

    def easyrsa_prepare(i: int) -> None:
        setup = Runner(b.easyrsa_env(pki), b.root)
        setup.run([EASYRSA, "--use-algo=ec", "--curve=prime256v1", "build-client-full",
                   f"c{i}", "nopass"])  # fmt: skip

    def easyrsa_work(r: Runner, i: int) -> None:
        b.easyrsa(r, pki, "revoke", f"c{i}")
        b.easyrsa(r, pki, "gen-crl")

    b.case(
        "revoke one client + new CRL",
        [
            ("certwiz revoke", certwiz_prepare, certwiz_work),
            ("raw openssl (ca -revoke, ca -gencrl)", raw_prepare, raw_work),
            ("easy-rsa revoke + gen-crl", easyrsa_prepare, easyrsa_work),
        ],
    )


def fleet(b: Bench, count: int, runs: int, loop_sample: int) -> None:
    """COUNT EC clients with p12: `client issue-batch`, the two-core floor pipeline, and the
    sequential loops (raw openssl, easy-rsa; `client issue` at small sizes).

    A loop grows linearly with COUNT (one client after another, nothing shared), so above
    LOOP_SAMPLE clients a loop runs LOOP_SAMPLE of them and its times are scaled by
    COUNT / LOOP_SAMPLE; the contender's name says so.
    """
    base = b.root / "fleet"
    made: dict[str, object] = {}
    looped = min(count, loop_sample)
    scale = count / looped
    scaled = f" ({looped} of {count}, scaled)" if looped < count else ""

    def fresh(i: int) -> tuple[Profile, Profile, Path]:
        made[f"cas{i}"] = cas = with_cas(b, f"fleet/{i}")
        return cas

    def scaled_by(r: Runner) -> None:
        r.wall, r.cpu = r.wall * scale, r.cpu * scale

    def certwiz_batch(r: Runner, i: int) -> None:
        mine = made[f"cas{i}"][0]  # type: ignore[index]
        rows = base / f"{i}/fleet.csv"
        rows.write_text("name\n" + "".join(f"c{n}\n" for n in range(count)))
        r.run([*CERTWIZ, "client", "issue-batch", "-p", "p", "--from", rows, "-u", "--json",
               "--home", mine.home])  # fmt: skip

    def certwiz_loop(r: Runner, i: int) -> None:
        mine = made[f"cas{i}"][0]  # type: ignore[index]
        for n in range(looped):
            r.run([*CERTWIZ, "client", "issue", "-p", "p", "-n", f"loop{n}", "-u",
                   "--home", mine.home])  # fmt: skip
        scaled_by(r)

    def raw_loop(r: Runner, i: int) -> None:
        raw = made[f"cas{i}"][1]  # type: ignore[index]
        for n in range(looped):
            raw_client(r, raw, base / f"{i}/loop-out", f"loop{n}", EC)
        scaled_by(r)

    def floor(r: Runner, i: int) -> None:
        """xargs -P 2 key+CSR, one `openssl ca -infiles`, xargs -P 2 pkcs12: both cores."""
        raw = made[f"cas{i}"][1]  # type: ignore[index]
        out = base / f"{i}/floor-out"
        out.mkdir(parents=True)
        cores = os.cpu_count() or 2
        names = " ".join(f"c{n}" for n in range(count))
        q = shlex.quote
        csrs = " ".join(f"c{n}.csr" for n in range(count))
        script = (
            f"cd {q(str(out))} && printf '%s\\n' {names} | xargs -P {cores} -I @ "
            f"openssl req -new {' '.join(EC)} -nodes -keyout @.key -subj /CN=@ -out @.csr "
            f"2>/dev/null && openssl ca -batch -config {q(str(raw.cnf))} -notext "
            f"-extensions client_ext -days 365 -out all.pem -infiles {csrs} 2>/dev/null && "
            f"tail -n {count} {q(str(raw.index))} | awk -F'\\t' '{{print substr($6, 5), $4}}' "
            f'| xargs -P {cores} -L 1 sh -c \'openssl pkcs12 -export -inkey "$0.key" '
            f'-in {q(str(raw.newcerts))}/"$1.pem" -certfile {q(str(raw.ca_cert))} '
            f'-name "$0" -out "$0.p12" {" ".join(P12_NOPASS)}\''
        )
        r.run([script], shell=True)

    def easyrsa_loop(r: Runner, i: int) -> None:
        pki = made[f"cas{i}"][2]  # type: ignore[index]
        for n in range(looped):
            b.easyrsa(r, pki, "--use-algo=ec", "--curve=prime256v1", "build-client-full",
                      f"c{n}", "nopass")  # fmt: skip
            b.easyrsa(r, pki, "export-p12", f"c{n}", "nopass")
        scaled_by(r)

    prepared: set[int] = set()

    def prepare(i: int) -> None:
        if i not in prepared:
            prepared.add(i)
            fresh(i)

    contenders: list[Contender] = [
        ("certwiz client issue-batch -u", prepare, certwiz_batch),
        (f"floor: xargs -P {os.cpu_count()} + ca -infiles", prepare, floor),
        (f"raw openssl sequential loop{scaled}", prepare, raw_loop),
        (f"easy-rsa loop{scaled}", prepare, easyrsa_loop),
    ]
    if count <= 100:  # one process per certificate: minutes per hundred on a busy machine
        contenders.append((f"certwiz client issue loop{scaled}", prepare, certwiz_loop))
    b.case(f"fleet: {count} EC clients with PKCS#12", contenders, runs=runs)
    if scaled:
        b.notes["fleet"] = (
            f"the loops ran {looped} of the {count} clients (one after another, nothing "
            f"shared, so their cost is linear); their times are scaled by {scale:g}."
        )


def large(b: Bench, size: int, runs: int) -> None:
    home = b.root / f"large-{size}"
    home.mkdir(parents=True)
    runner = Runner(b.env, b.root)
    import time

    started = time.perf_counter()
    profile = generate(home, "big", size, size // 10)
    made = time.perf_counter() - started
    print(f"== generated {size} entries in {made:.1f} s", flush=True)
    b.notes[f"generate {size}"] = f"bench/gen_profile.py wrote {size} entries in {made:.1f} s"
    del runner
    out = home / "raw-out"
    valid = [  # revoke's victims: V lines past their not-after are expired, not revocable
        str(e.common_name) for e in database.read(profile.index) if e.status() == "valid"
    ]

    def cw(*args: str | Path) -> Callable[[Runner, int, bool], None]:
        def work(r: Runner, _i: int, baseline: bool) -> None:
            run_certwiz(r, *args, "--home", home, baseline=baseline)

        return work

    listing = cw("list", "-p", "big", "--expiring", "30d", "--json")
    b.case(
        f"{size} entries: list --expiring 30d --json",
        with_baseline([], "certwiz list --expiring 30d --json", listing) + floors(profile.index),
        runs=runs,
    )
    b.case(
        f"{size} entries: check",
        with_baseline([], "certwiz check", cw("check", "-p", "big")),
        runs=runs,
    )

    def certwiz_issue(r: Runner, i: int, baseline: bool) -> None:
        run_certwiz(r, "client", "issue", "-p", "big", "-n", f"more-cw-{i}{'b' * baseline}",
                    "-u", "--home", home, baseline=baseline)  # fmt: skip

    def raw_issue(r: Runner, i: int) -> None:
        raw_client(r, profile, out, f"more-raw-{i}", EC)

    b.case(
        f"{size} entries: issue one more EC client with p12",
        with_baseline(
            [("raw openssl (req, ca, pkcs12)", None, raw_issue)],
            "certwiz client issue -u",
            certwiz_issue,
        )
        + floors(profile.index),
        runs=runs,
    )

    def certwiz_revoke(r: Runner, i: int, baseline: bool) -> None:
        victim = valid[3 * i + 2] if baseline else valid[3 * i]
        run_certwiz(r, "revoke", "-p", "big", "-n", victim, "--home", home, baseline=baseline)

    def raw_revoke(r: Runner, i: int) -> None:
        serial = serial_of(profile, valid[3 * i + 1])
        r.run(["openssl", "ca", "-batch", "-config", profile.cnf, "-revoke",
               profile.newcert_path(serial), "-crl_reason", "unspecified"])  # fmt: skip
        r.run(["openssl", "ca", "-gencrl", "-batch", "-config", profile.cnf, "-out", profile.crl])

    b.case(
        f"{size} entries: revoke one + new CRL",
        with_baseline(
            [("raw openssl (ca -revoke, ca -gencrl)", None, raw_revoke)],
            "certwiz revoke",
            certwiz_revoke,
        )
        + floors(profile.index),
        runs=runs,
    )
    shutil.rmtree(home)


def write_results(b: Bench, path: Path, argv: list[str]) -> None:
    lines = ["# certwiz benchmark results", ""]
    lines += [f"`{shlex.join(['bench/run.py', *argv])}`; explained in bench/README.md.", ""]
    lines += ["| | |", "|---|---|"]
    info = {**machine(), "certwiz": certwiz.__version__}
    lines += [f"| {k} | {v} |" for k, v in info.items()]
    lines += ["", "Times are wall clock, median of the runs, [min-max]; cpu is user+system of",
              "every process the contender started; x is the median over the case's first row;",
              "rss is the largest resident set of any one of its processes.", ""]  # fmt: skip
    case = None
    for r in b.results:
        if r.case != case:
            case = r.case
            first = r.median
            lines += ["", f"## {case}", "", "| contender | median | min-max | cpu | x | peak rss |",
                      "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        lines.append(
            f"| {r.contender} | {r.median * 1000:.1f} ms | {r.low * 1000:.1f}-{r.high * 1000:.1f}"
            f" | {r.cpu * 1000:.1f} ms | {r.median / first:.2f} | {r.max_rss_mb:.0f} MB |"
        )
    if b.notes:
        lines += ["", "## Notes", ""] + [f"- {k}: {v}" for k, v in b.notes.items()]
    path.write_text("\n".join(lines) + "\n")


def compile_certwiz(baseline: Path | None) -> None:
    """Byte-compile certwiz (and the baseline's) as `pip install` does for a user.

    An editable checkout run with PYTHONDONTWRITEBYTECODE=1 (as this project's sessions
    are) compiles every certwiz module from source in every process: about 0.15 s of
    CPU per command that no installed certwiz pays, and that hid the rest before 15:45.
    """
    import compileall

    for root in (Path(certwiz.__file__).parent, *([baseline / "certwiz"] if baseline else [])):
        compileall.compile_dir(root, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--fleet", type=int, default=1000, help="clients in the fleet case")
    parser.add_argument("--fleet-runs", type=int, default=1)
    parser.add_argument(
        "--fleet-loop", type=int, default=100, help="clients the loops run, scaled to --fleet"
    )
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--large-runs", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated: startup,ca,client,rsa,...")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one run each")
    parser.add_argument(
        "--baseline", type=Path, help="a checkout of an older certwiz: its rows beside this one's"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results.md"))
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.fleet, args.fleet_runs, args.sizes, args.large_runs = 1, 3, 1, "50", 1
    global BASELINE
    BASELINE = args.baseline
    compile_certwiz(BASELINE)
    if not Path(EASYRSA).is_file():
        sys.exit(f"easy-rsa not found at {EASYRSA}: apt-get install easy-rsa (or set EASYRSA)")
    cases: dict[str, Callable[[Bench], None]] = {
        "startup": startup,
        "ca": ca_init,
        "client": lambda b: one_client(b, rsa=False),
        "rsa": lambda b: one_client(b, rsa=True),
        "revoke": revoke,
        "fleet": lambda b: fleet(b, args.fleet, args.fleet_runs, args.fleet_loop),
        "large": lambda b: [large(b, int(n), args.large_runs) for n in args.sizes.split(",")],
    }
    wanted = [c for c in args.only.split(",") if c] or list(cases)
    with tempfile.TemporaryDirectory(prefix="certwiz-bench-") as tmp:
        bench = Bench(Path(tmp), args.runs)
        for name in wanted:
            cases[name](bench)
    write_results(bench, args.out, sys.argv[1:])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
