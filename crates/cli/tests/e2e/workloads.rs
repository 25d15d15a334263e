//! Issue 16, workloads: a StatefulSet with its headless Service (ordered pods, stable names,
//! hostnames and DNS records that survive a pod's deletion), a Job run to its completions and
//! a CronJob that starts a Job on its one-minute schedule, and a namespace bounded by a
//! LimitRange and a ResourceQuota (with a claim that stays Pending), and `kubectl drain`
//! through the eviction API, all on one cluster.

use crate::harness::Cluster;
use crate::pods::{apply, exec, json, wait_dns, wait_ready, AGNHOST};
use crate::services::poll;

const WEB: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: nginx, labels: {app: nginx}}
spec:
  clusterIP: None
  selector: {app: nginx}
  ports: [{name: web, port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: nginx
  replicas: 3
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      containers:
      - name: nginx
        image: nginx
        ports: [{name: web, containerPort: 80}]
        volumeMounts: [{name: www, mountPath: /usr/share/nginx/html}]
  volumeClaimTemplates:
  - metadata: {name: www}
    spec:
      accessModes: ["ReadWriteOnce"]
      resources: {requests: {storage: 1Gi}}
"#;

const BATCH: &str = r#"
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "*/1 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: c, image: busybox, command: ["true"]}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: three}
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: ["sh", "-c", "echo done"]}]
"#;

const BOUNDED: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: bounded}
---
apiVersion: v1
kind: LimitRange
metadata: {name: cpu, namespace: bounded}
spec:
  limits: [{type: Container, default: {cpu: 300m}, max: {cpu: "1"}}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: bounded}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"#;

const BIG: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: big, namespace: bounded}
spec:
  containers: [{name: c, image: busybox, command: [sleep, "3600"], resources: {limits: {cpu: "2"}}}]
"#;

/// `kubectl create -f -` of `yaml`, which must fail: its stderr.
fn create_refused(c: &Cluster, yaml: &str) -> String {
    let out = crate::api_schema::kubectl_stdin(c, &["create"], yaml);
    assert!(!out.status.success(), "{yaml} was created");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Issue 16's enforced kinds, through kubectl: the LimitRange fills in and bounds containers'
/// CPU, the quota stops a Deployment at its pod count (the ReplicaSet says why), and a claim
/// stays Pending with the persistent-volume controller's reason.
fn limits_and_quotas(c: &Cluster) {
    apply(c, BOUNDED);
    c.kubectl_ok(&[
        "-n",
        "bounded",
        "create",
        "quota",
        "compute",
        "--hard=pods=2,requests.cpu=1",
    ]);
    c.kubectl_ok(&[
        "-n",
        "bounded",
        "create",
        "deployment",
        "busy",
        "--image",
        "busybox",
        "--replicas",
        "3",
        "--",
        "sleep",
        "3600",
    ]);
    poll("the quota counts two pods", || {
        let q = json(c, &["-n", "bounded", "get", "quota", "compute"]);
        (q["status"]["used"]["pods"] == "2" && q["status"]["used"]["requests.cpu"] == "600m")
            .then_some(())
    });
    let table = c.kubectl_ok(&["-n", "bounded", "get", "quota"]);
    assert!(
        table.starts_with("NAME") && table.contains("REQUEST"),
        "{table}"
    );
    assert!(table.contains("pods: 2/2, requests.cpu: 600m/1"), "{table}");
    let pods = json(c, &["-n", "bounded", "get", "pods"]);
    let pods = pods["items"].as_array().unwrap();
    assert_eq!(pods.len(), 2, "{pods:?}");
    let p = &pods[0];
    assert_eq!(
        p["spec"]["containers"][0]["resources"]["limits"]["cpu"],
        "300m"
    );
    assert_eq!(
        p["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
        "LimitRanger plugin set: cpu request for container busybox; cpu limit for container busybox"
    );
    poll("the ReplicaSet reports the quota", || {
        let events = c.kubectl_ok(&["-n", "bounded", "get", "events"]);
        events
            .lines()
            .find(|l| l.contains("FailedCreate") && l.contains("exceeded quota: compute"))
            .map(|l| assert!(l.contains("Error creating: pods \"busy-") && l.contains("is forbidden: exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2"), "{l}"))
    });
    // The built-in PriorityClasses exist, and kubectl's generator (protobuf) makes another.
    c.kubectl_ok(&[
        "get",
        "priorityclass",
        "system-node-critical",
        "system-cluster-critical",
    ]);
    c.kubectl_ok(&[
        "create",
        "priorityclass",
        "low",
        "--value=-5",
        "--description=batch",
    ]);
    assert_eq!(json(c, &["get", "priorityclass", "low"])["value"], -5);
    let refused = create_refused(c, BIG);
    assert!(
        refused.contains(
            "pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
        ),
        "{refused}"
    );
    poll("the claim says why it is Pending", || {
        let d = c.kubectl_ok(&["-n", "bounded", "describe", "pvc", "data"]);
        (d.contains("Pending")
            && d.contains("FailedBinding")
            && d.contains(
                "no persistent volumes available for this claim and no storage class is set",
            ))
        .then_some(())
    });
    // kubectl 1.32's claim columns; capacity and access modes only once bound.
    let claims = c.kubectl_ok(&["-n", "bounded", "get", "pvc"]);
    let rows: Vec<Vec<&str>> = claims
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        [
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS",
            "MODES",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "AGE"
        ],
        "{claims}"
    );
    assert_eq!(rows[1][..3], ["data", "Pending", "<unset>"], "{claims}");
}

const MOVERS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: movers}
spec:
  replicas: 2
  selector: {matchLabels: {app: movers}}
  template:
    metadata: {labels: {app: movers}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox
        command: [sleep, "3600"]
        volumeMounts: [{name: scratch, mountPath: /scratch}]
      volumes: [{name: scratch, emptyDir: {}}]
"#;

/// The nodes the Ready pods labelled `app=movers` run on.
fn movers_nodes(c: &Cluster) -> Vec<String> {
    wait_ready(c, "app=movers", 2)
        .iter()
        .map(|p| {
            p["spec"]["nodeName"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// `kubectl drain` through the eviction API: a Deployment's pods leave the node (cordoned) and
/// come back elsewhere; a budget that needs every pod blocks the eviction with kubectl's message.
fn drain(c: &Cluster) {
    apply(c, MOVERS);
    let node = movers_nodes(c).remove(0);
    // Only this test's pods: the others' bare pods would need --force.
    let flags = [
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--pod-selector=app=movers",
    ];
    let out = c.kubectl_ok(&[&["drain", node.as_str(), "--timeout=120s"][..], &flags[..]].concat());
    assert!(
        out.contains(&format!("node/{node} cordoned"))
            && out.contains("evicting pod default/movers-")
            && out.contains(&format!("node/{node} drained")),
        "{out}"
    );
    let spec = json(c, &["get", "node", &node])["spec"].clone();
    assert_eq!(spec["unschedulable"], true, "{spec}");
    poll("the movers run elsewhere", || {
        let nodes = movers_nodes(c);
        (!nodes.contains(&node)).then_some(())
    });
    let out = c.kubectl_ok(&["uncordon", &node]);
    assert!(out.contains(&format!("node/{node} uncordoned")), "{out}");

    // Now both movers share one node; a budget needing both refuses any eviction there.
    let other = movers_nodes(c).remove(0);
    c.kubectl_ok(&[
        "create",
        "pdb",
        "movers",
        "--selector=app=movers",
        "--min-available=2",
    ]);
    poll("the movers' budget allows nothing", || {
        let b = json(c, &["get", "pdb", "movers"]);
        (b["status"]["currentHealthy"] == 2 && b["status"]["disruptionsAllowed"] == 0).then_some(())
    });
    let out = c.kubectl(&[&["drain", other.as_str(), "--timeout=8s"][..], &flags[..]].concat());
    let text = crate::harness::show(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{text}"
    );
    c.kubectl_ok(&["uncordon", &other]);
    assert_eq!(wait_ready(c, "app=movers", 2).len(), 2);
}

/// web-<i>'s address from inside `client`, as `nslookup web-<i>.nginx` answers it.
fn lookup(c: &Cluster, name: &str) -> Option<String> {
    let out = exec(
        c,
        "client",
        &["sh", "-c", &format!("nslookup {name} || true")],
    );
    out.lines()
        .skip_while(|l| !l.starts_with("Name:"))
        .find_map(|l| l.strip_prefix("Address: "))
        .map(str::to_string)
}

fn pod_ip(c: &Cluster, pod: &str) -> String {
    poll(&format!("{pod} has an IP"), || {
        let p = json(c, &["get", "pod", pod]);
        p["status"]["podIP"].as_str().map(str::to_string)
    })
}

#[test]
fn stateful_sets_jobs_and_cron_jobs() {
    let c = Cluster::up(2);
    // The CronJob goes first: its first run is up to a minute away, and waits with the rest.
    apply(&c, BATCH);
    wait_dns(&c);
    c.kubectl_ok(&["run", "client", "--image", AGNHOST, "--", "pause"]);
    apply(&c, WEB);

    let pods = wait_ready(&c, "app=nginx", 3);
    // OrderedReady: each pod was created after the one before it was Ready.
    let created = |i: usize| {
        let name = format!("web-{i}");
        let p = pods.iter().find(|p| p["metadata"]["name"] == name.as_str());
        let p = p.unwrap_or_else(|| panic!("{name} missing"));
        let ready = p["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()["lastTransitionTime"]
            .as_str()
            .unwrap()
            .to_string();
        (
            p["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap()
                .to_string(),
            ready,
        )
    };
    for i in 1..3 {
        let (made, _) = created(i);
        let (_, before_ready) = created(i - 1);
        assert!(
            made >= before_ready,
            "web-{i} made at {made}, web-{} ready at {before_ready}",
            i - 1
        );
    }
    assert_eq!(exec(&c, "web-0", &["hostname"]).trim(), "web-0");
    // kubectl's rollout commands read the StatefulSet's status and revisions.
    let status = c.kubectl_ok(&["rollout", "status", "statefulset/web", "--timeout=60s"]);
    assert!(
        status.contains("partitioned roll out complete") || status.contains("roll out complete"),
        "{status}"
    );
    let history = c.kubectl_ok(&["rollout", "history", "statefulset/web"]);
    assert!(
        history.lines().any(|l| l.trim_start().starts_with('1')),
        "{history}"
    );
    // A budget of 2 over the 3 Ready pods allows one disruption (kubectl create pdb: protobuf).
    c.kubectl_ok(&[
        "create",
        "pdb",
        "web",
        "--selector=app=nginx",
        "--min-available=2",
    ]);
    poll("the budget allows one disruption", || {
        let b = json(&c, &["get", "pdb", "web"]);
        (b["status"]["disruptionsAllowed"] == 1 && b["status"]["currentHealthy"] == 3).then_some(())
    });
    let table = c.kubectl_ok(&["get", "pdb", "web"]);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[1][..4], ["web", "2", "N/A", "1"], "{table}");
    let sts = c.kubectl_ok(&["get", "statefulset", "web"]);
    let rows: Vec<Vec<&str>> = sts
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAME", "READY", "AGE"], "{sts}");
    assert_eq!(rows[1][..2], ["web", "3/3"], "{sts}");

    wait_ready(&c, "run=client", 1);
    let ip0 = pod_ip(&c, "web-0");
    poll("web-0.nginx resolves to web-0", || {
        (lookup(&c, "web-0.nginx").as_deref() == Some(ip0.as_str())).then_some(())
    });

    // A deleted pod comes back with the same name, and DNS follows its new address.
    let old_uid = json(&c, &["get", "pod", "web-1"])["metadata"]["uid"].clone();
    c.kubectl_ok(&["delete", "pod", "web-1"]);
    poll("web-1 is made again", || {
        let p = json(&c, &["get", "pods", "-l", "app=nginx"]);
        p["items"]
            .as_array()?
            .iter()
            .find(|p| p["metadata"]["name"] == "web-1" && p["metadata"]["uid"] != old_uid)
            .map(|_| ())
    });
    wait_ready(&c, "app=nginx", 3);
    let ip1 = pod_ip(&c, "web-1");
    poll("web-1.nginx resolves to the new web-1", || {
        (lookup(&c, "web-1.nginx.default.svc.cluster.local").as_deref() == Some(ip1.as_str()))
            .then_some(())
    });

    // The Job runs its three completions, two at a time.
    poll("job three completes", || {
        let j = json(&c, &["get", "job", "three"]);
        (j["status"]["succeeded"] == 3
            && j["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Complete" && c["status"] == "True"))
        .then_some(())
    });
    let jobs = c.kubectl_ok(&["get", "job", "three"]);
    let rows: Vec<Vec<&str>> = jobs
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        "{jobs}"
    );
    assert_eq!(rows[1][..3], ["three", "Complete", "3/3"], "{jobs}");

    limits_and_quotas(&c);

    // The CronJob started a Job at a minute boundary and recorded it.
    let job = poll("the cron job starts a job", || {
        let j = json(&c, &["get", "jobs"]);
        j["items"]
            .as_array()?
            .iter()
            .find(|j| j["metadata"]["ownerReferences"][0]["name"] == "tick")
            .map(|j| {
                j["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
    });
    assert!(job.starts_with("tick-"), "{job}");
    let cj = json(&c, &["get", "cronjob", "tick"]);
    let last = cj["status"]["lastScheduleTime"]
        .as_str()
        .unwrap_or_default();
    assert!(last.ends_with(":00Z"), "{cj}");

    // A Job made by hand from the CronJob's template, as `kubectl create job --from` does.
    c.kubectl_ok(&["create", "job", "by-hand", "--from=cronjob/tick"]);
    poll("the job made from the cron job completes", || {
        let j = json(&c, &["get", "job", "by-hand"]);
        (j["status"]["succeeded"] == 1).then_some(())
    });

    // Last: draining cordons a node, which the steps above must not see.
    drain(&c);
}
