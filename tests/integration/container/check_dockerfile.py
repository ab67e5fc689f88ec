"""Checks the invariants of rwsgi's Dockerfile; run by tests/integration/container.

    python check_dockerfile.py DOCKERFILE CONTEXT_DIR RWSGI_BINARY

Prints one line per violation and exits 1 if there is any, 0 otherwise.
CONTEXT_DIR holds the build context (.dockerignore and the files COPY takes);
RWSGI_BINARY answers --help, so every flag in CMD must be a real one.
"""

import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys

from dockerfile_parse import DockerfileParser

URL = re.compile(r"^(https?|ftp|git)://|^git@")


def stages(structure):
    """[(from_value, [instructions])] in order; instructions are structure dicts."""
    out = []
    for ins in structure:
        if ins["instruction"] == "FROM":
            out.append((ins["value"], []))
        elif ins["instruction"] != "COMMENT" and out:
            out[-1][1].append(ins)
    return out


def parse_from(value):
    """'--platform=x image:tag AS name' -> (image, tag, name)."""
    words = [w for w in value.split() if not w.startswith("--")]
    ref = (words[0] if words else "").split("@")[0]
    name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
    if ":" in ref.rpartition("/")[2]:
        image, _, tag = ref.rpartition(":")
    else:
        image, tag = ref, ""
    return image, tag, name


def flags_of(value):
    """Leading --flag=value words of COPY/ADD/RUN, and the rest."""
    words = shlex.split(value)
    flags = {}
    while words and words[0].startswith("--"):
        k, _, v = words.pop(0)[2:].partition("=")
        flags[k] = v
    return flags, words


def exec_form(ins, problems):
    try:
        argv = json.loads(ins["value"])
    except ValueError:
        argv = None
    if not (isinstance(argv, list) and all(isinstance(a, str) for a in argv)):
        problems.append(
            "%s must be in exec form (a JSON array), got %r: in shell form /bin/sh is PID 1 "
            "and TERM never reaches rwsgi" % (ins["instruction"], ins["value"])
        )
        return None
    return argv


def env_of(stage_instructions):
    env = {}
    for ins in stage_instructions:
        if ins["instruction"] == "ENV":
            words = shlex.split(ins["value"])
            if words and "=" not in words[0]:  # legacy `ENV KEY value`
                env[words[0]] = " ".join(words[1:])
            else:
                for w in words:
                    k, _, v = w.partition("=")
                    env[k] = v
    return env


def path_match(pattern, path):
    """Docker's per-segment glob: `*` does not cross a slash."""
    pat, segs = pattern.split("/"), path.split("/")
    return len(pat) == len(segs) and all(fnmatch.fnmatchcase(s, p) for s, p in zip(segs, pat))


def dockerignore_excludes(context, rel):
    """Whether .dockerignore leaves `rel` out of the build context: the last
    matching line wins, and a line matching a parent directory matches what
    is under it. (`**` is not supported; the project's file does not use it.)"""
    try:
        lines = open(os.path.join(context, ".dockerignore")).read().splitlines()
    except FileNotFoundError:
        return False
    parts = os.path.normpath(rel).split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        if any(path_match(pattern, p) for p in prefixes):
            excluded = not negate
    return excluded


def cli_flag_values(argv):
    """{flag: [values]} from an argv of --flag value / --flag=value words."""
    out = {}
    i = 0
    while i < len(argv):
        w = argv[i]
        if w.startswith("--"):
            name, eq, val = w.partition("=")
            if eq:
                out.setdefault(name, []).append(val)
            elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                out.setdefault(name, []).append(argv[i + 1])
                i += 1
            else:
                out.setdefault(name, []).append("")
        i += 1
    return out


def port_of(addr):
    tail = addr.rpartition(":")[2]
    return int(tail) if tail.isdigit() else None


def check(dockerfile, context, binary):
    problems = []
    structure = DockerfileParser(path=dockerfile).structure
    all_stages = stages(structure)

    if len(all_stages) != 2:
        problems.append("expected 2 stages (build, runtime), found %d" % len(all_stages))
    for value, _ in all_stages:
        image, tag, _ = parse_from(value)
        if "bookworm" not in tag:
            problems.append(
                "FROM %s: pin a Debian bookworm tag (both stages must share one distro "
                "Python, so libpython sits where the build's rpath points)" % value
            )
    for ins in structure:
        if ins["instruction"] == "ADD":
            _, srcs = flags_of(ins["value"])
            for src in srcs[:-1]:
                if URL.search(src):
                    problems.append("ADD of a URL (%s): download in a RUN with a checksum, or COPY" % src)
    if len(all_stages) < 2:
        return problems

    (build_from, build), (run_from, runtime) = all_stages[0], all_stages[-1]
    _, _, build_name = parse_from(build_from)
    run_image, _, _ = parse_from(run_from)
    build_text = "\n".join(i["value"] for i in build if i["instruction"] == "RUN")
    run_text = "\n".join(i["value"] for i in runtime if i["instruction"] == "RUN")

    # Build stage: Debian's python3-dev, PYO3_PYTHON pointing at it, a release build.
    if "python3-dev" not in build_text:
        problems.append("the build stage must install python3-dev (headers and libpython3.11.so)")
    if env_of(build).get("PYO3_PYTHON") != "/usr/bin/python3" and "PYO3_PYTHON=/usr/bin/python3" not in build_text:
        problems.append("the build stage must set PYO3_PYTHON=/usr/bin/python3")
    if not re.search(r"cargo build\b[^\n]*--release", build_text):
        problems.append("the build stage must run `cargo build --release`")
    if not build_name:
        problems.append("name the build stage (FROM ... AS build) and COPY --from it")

    # Runtime stage: the same distro Python, the binary from the build stage.
    if run_image.rpartition("/")[2] != "debian":
        problems.append(
            "the runtime stage must be Debian's image (got %s): rwsgi's rpath points at "
            "Debian's libpython directory" % run_image
        )
    for pkg in ("libpython3.11", "python3"):
        if not re.search(r"apt-get install[^\n&;|]*\s%s(\s|$)" % re.escape(pkg), run_text):
            problems.append("the runtime stage must apt-get install %s" % pkg)
    copies = [flags_of(i["value"]) for i in runtime if i["instruction"] == "COPY"]
    if not any(f.get("from") == build_name and any(s.endswith("/rwsgi") for s in w[:-1]) for f, w in copies):
        problems.append("the runtime stage must COPY --from=%s the rwsgi binary" % build_name)

    # Files from the build context must exist and not be dockerignored; the
    # big local directories stay out of the context.
    for heavy in ("target", ".venv", ".git"):
        if not dockerignore_excludes(context, heavy):
            problems.append(".dockerignore must exclude %s" % heavy)
    for ins in build + runtime:
        if ins["instruction"] not in ("COPY", "ADD"):
            continue
        f, words = flags_of(ins["value"])
        if "from" in f:
            continue
        for src in words[:-1]:
            if URL.search(src):
                continue
            if not os.path.exists(os.path.join(context, src)):
                problems.append("COPY %s: no such file in the build context" % src)
            elif dockerignore_excludes(context, src):
                problems.append("COPY %s: excluded by .dockerignore" % src)

    # How it runs: non-root, rwsgi as PID 1 in exec form, TERM to stop.
    users = [i["value"].strip() for i in runtime if i["instruction"] == "USER"]
    if not users:
        problems.append("the runtime stage must switch to a non-root USER")
    else:
        uid = users[-1].split(":")[0]
        if not uid.isdigit():
            problems.append(
                "USER %s: use a numeric uid, so Kubernetes' runAsNonRoot can verify it" % users[-1]
            )
        elif int(uid) == 0:
            problems.append("USER %s is root" % users[-1])
    entry = [i for i in runtime if i["instruction"] == "ENTRYPOINT"]
    cmd = [i for i in runtime if i["instruction"] == "CMD"]
    argv0 = None
    if len(entry) != 1:
        problems.append("the runtime stage needs exactly one ENTRYPOINT, found %d" % len(entry))
    else:
        argv = exec_form(entry[0], problems)
        if argv is not None:
            argv0 = os.path.basename(argv[0]) if argv else ""
            if argv0 != "rwsgi":
                problems.append(
                    "ENTRYPOINT %s: rwsgi itself must be PID 1 (it reaps and handles TERM; "
                    "no init or shell in front)" % entry[0]["value"]
                )
    args = []
    if len(cmd) != 1:
        problems.append("the runtime stage needs exactly one CMD, found %d" % len(cmd))
    else:
        args = exec_form(cmd[0], problems) or []
    stops = [i["value"].strip() for i in runtime if i["instruction"] == "STOPSIGNAL"]
    if stops[-1:] not in (["SIGTERM"], ["TERM"], ["15"]):
        problems.append("STOPSIGNAL SIGTERM is required (rwsgi's graceful shutdown), got %s" % stops)

    # CMD: real flags, and the ports it binds are the EXPOSEd ones.
    help_text = subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout
    known = set(re.findall(r"--[a-z0-9][a-z0-9-]*", help_text))
    given = cli_flag_values(args)
    for flag in given:
        if flag not in known:
            problems.append("CMD flag %s is not an rwsgi flag (see rwsgi --help)" % flag)
    exposed = set()
    for i in runtime:
        if i["instruction"] == "EXPOSE":
            exposed.update(int(p.split("/")[0]) for p in i["value"].split())
    if 8000 not in exposed:
        problems.append("EXPOSE 8000 is missing (got %s)" % sorted(exposed))
    for flag in ("--http", "--metrics"):
        for addr in given.get(flag, []):
            if port_of(addr) not in exposed:
                problems.append("CMD %s %s: port not EXPOSEd (%s)" % (flag, addr, sorted(exposed)))
    env = env_of(runtime)
    if "WEB_CONCURRENCY" in env and "--processes" in given:
        problems.append("CMD sets --processes, which overrides the image's WEB_CONCURRENCY")
    if "PORT" in env and ("--http" in given or "--socket" in given):
        problems.append("CMD sets --http/--socket, which overrides the image's PORT")
    if "PORT" in env and not env["PORT"].isdigit():
        problems.append("ENV PORT=%s is not a port number" % env["PORT"])
    elif "PORT" in env and int(env["PORT"]) not in exposed:
        problems.append("ENV PORT=%s: port not EXPOSEd (%s)" % (env["PORT"], sorted(exposed)))
    if "PORT" not in env and "--http" not in given and "--socket" not in given:
        problems.append("nothing says where to listen: set ENV PORT or CMD --http")
    for home in given.get("--home", []):
        made = any(home in i["value"] for i in runtime if i["instruction"] in ("COPY", "RUN"))
        if not made:
            problems.append("CMD --home %s: the runtime stage neither copies nor creates it" % home)
    return problems


def main():
    dockerfile, context, binary = sys.argv[1:4]
    problems = check(dockerfile, context, binary)
    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
