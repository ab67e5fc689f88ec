//! The manifests in etc/kubernetes/: validated against the Kubernetes
//! schemas (bundled with kubernetes-validate, so offline) and checked for
//! what rwsgi needs (container/check_kubernetes.py).

use std::path::Path;

use super::{mutate, run_checker, rwsgi_binary};
use crate::harness::{project_dir, TempDir};

const MODULES: &[&str] = &["kubernetes_validate", "yaml", "dockerfile_parse"];

fn manifests() -> std::path::PathBuf {
    project_dir().join("etc/kubernetes")
}

fn check(dir: &Path) -> (bool, String) {
    let dockerfile = project_dir().join("Dockerfile");
    run_checker(
        "check_kubernetes.py",
        MODULES,
        &[dir, rwsgi_binary(), &dockerfile],
    )
}

#[test]
fn kubernetes_manifests_validate_and_keep_their_invariants() {
    for name in ["deployment.yaml", "service.yaml", "hpa.yaml"] {
        assert!(
            manifests().join(name).exists(),
            "etc/kubernetes/{name} is missing"
        );
    }
    let (ok, problems) = check(&manifests());
    assert!(ok, "etc/kubernetes:\n{problems}");
}

/// A copy of etc/kubernetes with `file` edited.
fn mutated_manifests(file: &str, from: &str, to: &str) -> TempDir {
    let dir = TempDir::new("k8s");
    for entry in std::fs::read_dir(manifests()).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        if path.file_name().unwrap() == file {
            text = mutate(&text, from, to);
        }
        std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
    }
    dir
}

/// Each invariant, broken on purpose in a copy, is reported.
#[test]
fn kubernetes_checker_reports_each_broken_invariant() {
    let d = "deployment.yaml";
    let cases: &[(&str, &str, &str, &str)] = &[
        // Schema errors: a misspelt field, an unknown API version.
        (
            d,
            "containerPort: 8000",
            "containerPrt: 8000",
            "does not validate",
        ),
        (
            d,
            "readOnlyRootFilesystem: true",
            "readOnlyRootFs: true",
            "does not validate",
        ),
        (
            "hpa.yaml",
            "autoscaling/v2",
            "autoscaling/v9",
            "Couldn't find schema",
        ),
        // Shutdown: grace must exceed delay + timeout; a delay is needed.
        (
            d,
            "terminationGracePeriodSeconds: 35",
            "terminationGracePeriodSeconds: 30",
            "must exceed",
        ),
        (
            d,
            "- --shutdown-timeout\n            - \"25\"",
            "- --shutdown-timeout\n            - \"40\"",
            "must exceed",
        ),
        (
            d,
            "            - --shutdown-delay\n            - \"5\"\n",
            "",
            "--shutdown-delay (or a preStop sleep)",
        ),
        // Probes.
        (
            d,
            "readinessProbe:",
            "startupProbe:",
            "needs a readinessProbe",
        ),
        (
            d,
            "livenessProbe:",
            "startupProbe:",
            "needs a livenessProbe",
        ),
        (
            d,
            "path: /healthz\n              port: http",
            "path: /healthz\n              port: metrics",
            "through the app",
        ),
        // Ports and metrics.
        (
            d,
            "prometheus.io/port: \"9100\"",
            "prometheus.io/port: \"9191\"",
            "prometheus.io/port",
        ),
        (
            d,
            "containerPort: 9100",
            "containerPort: 9200",
            "--metrics port 9100",
        ),
        // Resources and security.
        (
            d,
            "memory: 512Mi",
            "ephemeral-storage: 1Gi",
            "limits.memory",
        ),
        (
            d,
            "runAsNonRoot: true",
            "runAsNonRoot: false",
            "runAsNonRoot",
        ),
        (
            d,
            "runAsUser: 10001",
            "runAsUser: 10002",
            "differs from the image's USER",
        ),
        (d, "mountPath: /tmp", "mountPath: /scratch", "TMPDIR"),
        (
            d,
            "allowPrivilegeEscalation: false",
            "allowPrivilegeEscalation: true",
            "allowPrivilegeEscalation",
        ),
        // Workers come from WEB_CONCURRENCY.
        (d, "value: \"2\"", "value: \"two\"", "WEB_CONCURRENCY"),
        (
            d,
            "- --http\n",
            "- --processes\n            - \"4\"\n            - --http\n",
            "overrides WEB_CONCURRENCY",
        ),
        (d, "- --chdir", "- --chdr", "not an rwsgi flag"),
        (d, "- /app/venv", "- /venv", "the image has"),
        (
            d,
            "revisionHistoryLimit: 5",
            "replicas: 3",
            "HorizontalPodAutoscaler owns",
        ),
        // The Service and the HPA point at the Deployment.
        (
            "service.yaml",
            "targetPort: http",
            "targetPort: web",
            "targetPort",
        ),
        (
            "service.yaml",
            "selector:\n    app.kubernetes.io/name: rwsgi",
            "selector:\n    app.kubernetes.io/name: other",
            "does not select",
        ),
        (
            "hpa.yaml",
            "kind: Deployment\n    name: rwsgi",
            "kind: Deployment\n    name: other",
            "scaleTargetRef",
        ),
        ("hpa.yaml", "name: cpu", "name: memory", "CPU Utilization"),
    ];
    for (file, from, to, expected) in cases {
        let dir = mutated_manifests(file, from, to);
        let (ok, problems) = check(dir.path());
        assert!(
            !ok && problems.contains(expected),
            "{file}: {from:?} -> {to:?}: expected a problem mentioning {expected:?}, got:\n{problems}"
        );
    }
}
