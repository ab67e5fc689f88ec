"""Validates rwsgi's Kubernetes manifests; run by tests/integration/container.

    python check_kubernetes.py MANIFEST_DIR RWSGI_BINARY [DOCKERFILE]

Every document of every *.yaml / *.yml file in MANIFEST_DIR is validated
against the Kubernetes OpenAPI schemas bundled with kubernetes-validate (no
network), strictly (unknown fields are errors), for the oldest and the newest
Kubernetes version it bundles. Then the invariants rwsgi relies on are
checked, and, given the Dockerfile, that the Deployment fits the image.
Prints one line per violation and exits 1 if there is any.
"""

import glob
import json
import os
import re
import subprocess
import sys

import kubernetes_validate
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, all_versions


def cli_flag_values(argv):
    """{flag: [values]} from an argv of --flag value / --flag=value words."""
    out = {}
    i = 0
    while i < len(argv):
        w = str(argv[i])
        if w.startswith("--"):
            name, eq, val = w.partition("=")
            if eq:
                out.setdefault(name, []).append(val)
            elif i + 1 < len(argv) and not str(argv[i + 1]).startswith("--"):
                out.setdefault(name, []).append(str(argv[i + 1]))
                i += 1
            else:
                out.setdefault(name, []).append("")
        i += 1
    return out


def seconds(flags, flag, default):
    vals = flags.get(flag)
    return float(vals[-1]) if vals else default


def port_of(addr):
    tail = str(addr).rpartition(":")[2]
    return int(tail) if tail.isdigit() else None


def load(directory, problems):
    docs = []
    files = sorted(glob.glob(os.path.join(directory, "*.yaml")) + glob.glob(os.path.join(directory, "*.yml")))
    if not files:
        problems.append("no manifests in %s" % directory)
    for path in files:
        name = os.path.basename(path)
        try:
            with open(path) as f:
                found = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            problems.append("%s: not YAML: %s" % (name, e))
            continue
        if not found:
            problems.append("%s: no Kubernetes object in it" % name)
        docs.extend((name, d) for d in found)
    return docs


def validate(docs, problems):
    versions = all_versions()
    for k8s in sorted({versions[0], versions[-1]}):
        for name, doc in docs:
            what = "%s (%s/%s)" % (name, doc.get("kind"), (doc.get("metadata") or {}).get("name"))
            try:
                kubernetes_validate.validate(doc, k8s, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                problems.append("%s does not validate against Kubernetes %s: %s: %s" % (what, k8s, path, e.message))
            except SchemaNotFoundError as e:
                problems.append("%s: %s" % (what, e.message))
            except Exception as e:  # a document without kind/apiVersion, ...
                problems.append("%s: cannot be validated: %r" % (what, e))


def container_port(container, port):
    """A probe's or Service's port (number or name) as a containerPort number."""
    for p in container.get("ports") or []:
        if port in (p.get("name"), p.get("containerPort")):
            return p.get("containerPort")
    return port if isinstance(port, int) else None


def check_deployment(dep, binary, problems):
    spec = dep.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or {}
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    annotations = ((spec.get("template") or {}).get("metadata") or {}).get("annotations") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    if not selector or any(labels.get(k) != v for k, v in selector.items()):
        problems.append("Deployment: selector %s does not match the pod labels %s" % (selector, labels))
    if "replicas" in spec:
        problems.append("Deployment: remove spec.replicas, the HorizontalPodAutoscaler owns the count")
    containers = [c for c in pod.get("containers") or [] if "--http" in cli_flag_values(c.get("args") or [])]
    if len(containers) != 1:
        problems.append("Deployment: expected one container with rwsgi args (--http ...), found %d" % len(containers))
        return None
    c = containers[0]
    flags = cli_flag_values(c.get("args") or [])

    help_text = subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout
    known = set(re.findall(r"--[a-z0-9][a-z0-9-]*", help_text))
    for flag in flags:
        if flag not in known:
            problems.append("Deployment: args flag %s is not an rwsgi flag (see rwsgi --help)" % flag)

    # Shutdown: Kubernetes' SIGKILL must come after rwsgi's own deadline.
    delay = seconds(flags, "--shutdown-delay", 0.0)
    timeout = seconds(flags, "--shutdown-timeout", 30.0)
    grace = pod.get("terminationGracePeriodSeconds", 30)
    pre_stop = (c.get("lifecycle") or {}).get("preStop")
    pre_stop_s = 0.0
    if pre_stop:
        pre_stop_s = float((pre_stop.get("sleep") or {}).get("seconds", 0))
        cmd = " ".join(str(a) for a in (pre_stop.get("exec") or {}).get("command") or [])
        m = re.search(r"\bsleep\s+(\d+(\.\d+)?)", cmd)
        if m:
            pre_stop_s = float(m.group(1))
    if delay <= 0 and pre_stop_s <= 0:
        problems.append(
            "Deployment: set --shutdown-delay (or a preStop sleep): endpoint removal reaches "
            "the proxies after SIGTERM, and they keep sending requests meanwhile"
        )
    if not grace > pre_stop_s + delay + timeout:
        problems.append(
            "Deployment: terminationGracePeriodSeconds %s must exceed preStop %s + "
            "--shutdown-delay %s + --shutdown-timeout %s" % (grace, pre_stop_s, delay, timeout)
        )

    # Ports, probes, metrics.
    http_ports = [port_of(a) for a in flags.get("--http", [])]
    declared = [p.get("containerPort") for p in c.get("ports") or []]
    for port in http_ports:
        if port not in declared:
            problems.append("Deployment: --http port %s is not a containerPort (%s)" % (port, declared))
    metrics_ports = [port_of(a) for a in flags.get("--metrics", [])]
    for port in metrics_ports:
        if port not in declared:
            problems.append("Deployment: --metrics port %s is not a containerPort (%s)" % (port, declared))
    if metrics_ports:
        if annotations.get("prometheus.io/scrape") != "true":
            problems.append('Deployment: pod annotation prometheus.io/scrape: "true" is missing')
        if str(annotations.get("prometheus.io/port")) != str(metrics_ports[0]):
            problems.append(
                "Deployment: prometheus.io/port %s is not the --metrics port %s"
                % (annotations.get("prometheus.io/port"), metrics_ports[0])
            )
    for probe_name in ("readinessProbe", "livenessProbe"):
        probe = c.get(probe_name)
        if not probe:
            problems.append("Deployment: the container needs a %s" % probe_name)
            continue
        handler = probe.get("httpGet") or probe.get("tcpSocket")
        if not handler:
            problems.append("Deployment: %s must be httpGet or tcpSocket" % probe_name)
            continue
        port = container_port(c, handler.get("port"))
        if port not in http_ports + metrics_ports:
            problems.append("Deployment: %s probes port %s, which rwsgi does not serve" % (probe_name, port))
    readiness = c.get("readinessProbe") or {}
    ready_port = container_port(c, (readiness.get("httpGet") or readiness.get("tcpSocket") or {}).get("port"))
    if readiness and ready_port not in http_ports:
        problems.append("Deployment: the readinessProbe must go through the app (an --http port), not %s" % ready_port)

    # Resources: the HPA's utilization is relative to the CPU request.
    res = c.get("resources") or {}
    for kind, keys in (("requests", ("cpu", "memory")), ("limits", ("memory",))):
        for key in keys:
            if key not in (res.get(kind) or {}):
                problems.append("Deployment: resources.%s.%s is missing" % (kind, key))

    # Security: non-root, read-only root filesystem with a writable $TMPDIR.
    pod_sc = pod.get("securityContext") or {}
    sc = c.get("securityContext") or {}
    if not (sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True):
        problems.append("Deployment: runAsNonRoot: true is required")
    if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
        problems.append("Deployment: runAsUser 0 is root")
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append("Deployment: allowPrivilegeEscalation: false is required")
    env = {e.get("name"): e.get("value") for e in c.get("env") or []}
    if sc.get("readOnlyRootFilesystem") is not True:
        problems.append("Deployment: readOnlyRootFilesystem: true is required")
    else:
        tmpdir = env.get("TMPDIR", "/tmp")
        mounts = {m.get("mountPath"): m.get("name") for m in c.get("volumeMounts") or []}
        volumes = {v.get("name"): v for v in pod.get("volumes") or []}
        name = mounts.get(tmpdir)
        if name is None or "emptyDir" not in volumes.get(name, {}):
            problems.append(
                "Deployment: with a read-only root filesystem, TMPDIR (%s) needs an emptyDir "
                "volume mounted there: rwsgi spools large request bodies to it" % tmpdir
            )

    # Worker count from WEB_CONCURRENCY, which --processes would override.
    wc = env.get("WEB_CONCURRENCY")
    if wc is None:
        problems.append("Deployment: set WEB_CONCURRENCY (the worker processes)")
    elif not (str(wc).isdigit() and int(wc) > 0):
        problems.append("Deployment: WEB_CONCURRENCY %r is not a positive integer" % wc)
    if "--processes" in flags or "--workers" in flags:
        problems.append("Deployment: --processes in args overrides WEB_CONCURRENCY; set one")
    return c


def check_against_image(container, pod, dockerfile, problems):
    """The Deployment runs the image the Dockerfile builds: same uid, ports
    the image exposes, paths that exist in it."""
    from dockerfile_parse import DockerfileParser

    structure = DockerfileParser(path=dockerfile).structure
    froms = [i for i, ins in enumerate(structure) if ins["instruction"] == "FROM"]
    final = structure[froms[-1] if froms else 0:]
    users = [ins["value"].split(":")[0].strip() for ins in final if ins["instruction"] == "USER"]
    run_as = (container.get("securityContext") or {}).get(
        "runAsUser", (pod.get("securityContext") or {}).get("runAsUser"))
    if run_as is not None and users and users[-1].isdigit() and int(users[-1]) != run_as:
        problems.append("Deployment: runAsUser %s differs from the image's USER %s" % (run_as, users[-1]))
    exposed = set()
    for ins in final:
        if ins["instruction"] == "EXPOSE":
            exposed.update(int(p.split("/")[0]) for p in ins["value"].split())
    for p in container.get("ports") or []:
        if p.get("containerPort") not in exposed:
            problems.append("Deployment: containerPort %s is not EXPOSEd by the image" % p.get("containerPort"))
    cmd = [ins["value"] for ins in final if ins["instruction"] == "CMD"]
    try:
        image_flags = cli_flag_values(json.loads(cmd[-1])) if cmd else {}
    except ValueError:
        image_flags = {}
    flags = cli_flag_values(container.get("args") or [])
    for flag in ("--home", "--chdir"):
        if flag in flags and flags[flag] != image_flags.get(flag):
            problems.append(
                "Deployment: %s %s, but the image has %s" % (flag, flags[flag], image_flags.get(flag))
            )


def check(directory, binary, dockerfile=None):
    problems = []
    docs = load(directory, problems)
    validate(docs, problems)
    by_kind = {}
    for _, d in docs:
        by_kind.setdefault(d.get("kind"), []).append(d)
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler"):
        if len(by_kind.get(kind, [])) != 1:
            problems.append("expected one %s, found %d" % (kind, len(by_kind.get(kind, []))))
    if problems and not by_kind.get("Deployment"):
        return problems
    dep = by_kind["Deployment"][0]
    dep_name = (dep.get("metadata") or {}).get("name")
    container = check_deployment(dep, binary, problems)
    if dockerfile and container is not None:
        pod = ((dep.get("spec") or {}).get("template") or {}).get("spec") or {}
        check_against_image(container, pod, dockerfile, problems)
    pod_labels = (((dep.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}

    for svc in by_kind.get("Service", []):
        spec = svc.get("spec") or {}
        sel = spec.get("selector") or {}
        if not sel or any(pod_labels.get(k) != v for k, v in sel.items()):
            problems.append("Service: selector %s does not select the Deployment's pods %s" % (sel, pod_labels))
        if spec.get("type", "ClusterIP") != "ClusterIP":
            problems.append("Service: type %s, expected ClusterIP" % spec.get("type"))
        for p in spec.get("ports") or []:
            target = container_port(container or {}, p.get("targetPort", p.get("port")))
            if container is not None and target not in [c.get("containerPort") for c in container.get("ports") or []]:
                problems.append("Service: targetPort %s is no containerPort of the Deployment" % p.get("targetPort"))

    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        spec = hpa.get("spec") or {}
        if hpa.get("apiVersion") != "autoscaling/v2":
            problems.append("HorizontalPodAutoscaler: use autoscaling/v2, not %s" % hpa.get("apiVersion"))
        ref = spec.get("scaleTargetRef") or {}
        if (ref.get("apiVersion"), ref.get("kind"), ref.get("name")) != ("apps/v1", "Deployment", dep_name):
            problems.append("HorizontalPodAutoscaler: scaleTargetRef %s is not the Deployment %s" % (ref, dep_name))
        cpu = [
            m for m in spec.get("metrics") or []
            if m.get("type") == "Resource"
            and (m.get("resource") or {}).get("name") == "cpu"
            and ((m.get("resource") or {}).get("target") or {}).get("type") == "Utilization"
        ]
        if not cpu:
            problems.append("HorizontalPodAutoscaler: expected a CPU Utilization metric")
        if not 1 <= spec.get("minReplicas", 1) <= spec.get("maxReplicas", 0):
            problems.append("HorizontalPodAutoscaler: need 1 <= minReplicas <= maxReplicas")
    return problems


def main():
    directory, binary = sys.argv[1:3]
    problems = check(directory, binary, sys.argv[3] if len(sys.argv) > 3 else None)
    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
