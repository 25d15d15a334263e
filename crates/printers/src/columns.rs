//! Table column definitions per kind, as `AddHandlers` in printers.go declares them.

use kinet_types::Resource;
use serde_json::{json, Value};

/// ObjectMeta's description of `name`, the Name column's.
pub const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const CONTAINERS_DOC: &str = "Names of each container in the template.";
const IMAGES_DOC: &str = "Images referenced by each container in the template.";
const SELECTOR_DOC: &str = "Label query over pods whose labels match this selector.";

/// One column: name, type, priority (1 = `-o wide` only) and description.
struct Col(&'static str, &'static str, i64, &'static str);

const NAME: Col = Col("Name", "string", 0, NAME_DOC);
const AGE: Col = Col("Age", "string", 0, AGE_DOC);
const CONTAINERS: Col = Col("Containers", "string", 1, CONTAINERS_DOC);
const IMAGES: Col = Col("Images", "string", 1, IMAGES_DOC);
const SELECTOR: Col = Col("Selector", "string", 1, SELECTOR_DOC);

fn kind_columns(kind: &str) -> Vec<Col> {
    match kind {
        "Pod" => vec![
            NAME,
            Col("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
            Col("Status", "string", 0, "The aggregate status of the containers in this pod."),
            Col("Restarts", "string", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            AGE,
            Col("IP", "string", 1, "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
            Col("Node", "string", 1, "NodeName indicates in which node this pod is scheduled."),
            Col("Nominated Node", "string", 1, "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods."),
            Col("Readiness Gates", "string", 1, "If specified, all readiness gates will be evaluated for pod readiness."),
        ],
        "Service" => vec![
            NAME,
            Col("Type", "string", 0, "type determines how the Service is exposed."),
            Col("Cluster-IP", "string", 0, "clusterIP is the IP address of the service and is usually assigned randomly."),
            Col("External-IP", "string", 0, "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
            Col("Port(s)", "string", 0, "The list of ports that are exposed by this service."),
            AGE,
            Col("Selector", "string", 1, "Route service traffic to pods with label keys and values matching this selector."),
        ],
        "Endpoints" => vec![
            NAME,
            Col("Endpoints", "string", 0, "The set of all endpoints is the union of all subsets."),
            AGE,
        ],
        "Node" => vec![
            NAME,
            Col("Status", "string", 0, "The status of the node"),
            Col("Roles", "string", 0, "The roles of the node"),
            AGE,
            Col("Version", "string", 0, "Kubelet Version reported by the node."),
            Col("Internal-IP", "string", 1, "List of addresses reachable to the node."),
            Col("External-IP", "string", 1, "List of addresses reachable to the node."),
            Col("OS-Image", "string", 1, "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
            Col("Kernel-Version", "string", 1, "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
            Col("Container-Runtime", "string", 1, "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
        ],
        "Namespace" => vec![NAME, Col("Status", "string", 0, "The status of the namespace"), AGE],
        "Event" => vec![
            Col("Last Seen", "string", 0, "The time at which the most recent occurrence of this event was recorded."),
            Col("Type", "string", 0, "Type of this event (Normal, Warning), new types could be added in the future"),
            Col("Reason", "string", 0, "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
            Col("Object", "string", 0, "The object that this event is about."),
            Col("Subobject", "string", 1, "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement."),
            Col("Source", "string", 1, "The component reporting this event. Should be a short machine understandable string."),
            Col("Message", "string", 0, "A human-readable description of the status of this operation."),
            Col("First Seen", "string", 1, "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
            Col("Count", "string", 1, "The number of times this event has occurred."),
            Col("Name", "string", 1, NAME_DOC),
        ],
        "ConfigMap" => vec![NAME, Col("Data", "string", 0, "Data contains the configuration data."), AGE],
        "Secret" => vec![
            NAME,
            Col("Type", "string", 0, "Used to facilitate programmatic handling of secret data."),
            Col("Data", "string", 0, "Data contains the secret data."),
            AGE,
        ],
        "ServiceAccount" => vec![
            NAME,
            Col("Secrets", "string", 0, "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
            AGE,
        ],
        "Deployment" => vec![
            NAME,
            Col("Ready", "string", 0, "Number of the pod with ready state"),
            Col("Up-to-date", "string", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
            Col("Available", "string", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        "ReplicaSet" => vec![
            NAME,
            Col("Desired", "integer", 0, "Replicas is the number of desired replicas."),
            Col("Current", "integer", 0, "Replicas is the most recently observed number of replicas."),
            Col("Ready", "integer", 0, "The number of ready replicas for this replica set."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        "DaemonSet" => vec![
            NAME,
            Col("Desired", "integer", 0, "The total number of nodes that should be running the daemon pod."),
            Col("Current", "integer", 0, "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
            Col("Ready", "integer", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."),
            Col("Up-to-date", "integer", 0, "The total number of nodes that are running updated daemon pod"),
            Col("Available", "integer", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available."),
            Col("Node Selector", "string", 0, "NodeSelector is a selector which must be true for the pod to fit on a node."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        "StatefulSet" => vec![
            NAME,
            Col("Ready", "string", 0, "Number of the pod with ready state"),
            AGE,
            CONTAINERS,
            IMAGES,
        ],
        // Descriptions: the first paragraph of each field's API documentation.
        "CertificateSigningRequest" => vec![
            NAME,
            AGE,
            Col("SignerName", "string", 0, "signerName indicates the requested signer, and is a qualified name."),
            Col("Requestor", "string", 0, "request contains an x509 certificate signing request encoded in a \"CERTIFICATE REQUEST\" PEM block. When serialized as JSON or YAML, the data is additionally base64-encoded."),
            Col("RequestedDuration", "string", 0, "expirationSeconds is the requested duration of validity of the issued certificate. The certificate signer may issue a certificate with a different validity duration so a client must check the delta between the notBefore and and notAfter fields in the issued certificate to determine the actual duration."),
            Col("Condition", "string", 0, "conditions applied to the request. Known conditions are \"Approved\", \"Denied\", and \"Failed\"."),
        ],
        "ResourceQuota" => vec![
            NAME,
            AGE,
            Col("Request", "string", 0, "Request represents a minimum amount of cpu/memory that a container may consume."),
            Col("Limit", "string", 0, "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
        ],
        "PodDisruptionBudget" => vec![
            NAME,
            Col("Min Available", "string", 0, "The minimum number of pods that must be available."),
            Col("Max Unavailable", "string", 0, "The maximum number of pods that may be unavailable."),
            Col("Allowed Disruptions", "integer", 0, "Calculated number of pods that may be disrupted at this time."),
            AGE,
        ],
        "PriorityClass" => vec![
            NAME,
            Col("Value", "integer", 0, "value represents the integer value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec."),
            Col("Global-Default", "boolean", 0, "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class. Only one PriorityClass can be marked as `globalDefault`. However, if more than one PriorityClasses exists with their `globalDefault` field set to true, the smallest value of such global default PriorityClasses will be used as the default priority."),
            AGE,
            Col("PreemptionPolicy", "string", 0, "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset."),
        ],
        "PersistentVolumeClaim" => vec![
            NAME,
            Col("Status", "string", 0, "phase represents the current phase of PersistentVolumeClaim."),
            Col("Volume", "string", 0, "volumeName is the binding reference to the PersistentVolume backing this claim."),
            Col("Capacity", "string", 0, "capacity represents the actual resources of the underlying volume."),
            Col("Access Modes", "string", 0, "accessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1"),
            Col("StorageClass", "string", 0, "StorageClass of the pvc"),
            Col("VolumeAttributesClass", "string", 0, "VolumeAttributesClass of the pvc"),
            AGE,
            Col("VolumeMode", "string", 1, "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec."),
        ],
        "ControllerRevision" => vec![
            NAME,
            Col("Controller", "string", 0, "Controller of the object"),
            Col("Revision", "string", 0, "Revision indicates the revision of the state represented by Data."),
            AGE,
        ],
        "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration" => vec![
            NAME,
            Col("Webhooks", "integer", 0, "Webhooks indicates the number of webhooks registered in this configuration"),
            AGE,
        ],
        "Job" => vec![
            NAME,
            Col("Status", "string", 0, "Status of the job."),
            Col("Completions", "string", 0, "The completion status of the job."),
            Col("Duration", "string", 0, "Time required to complete the job."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        "CronJob" => vec![
            NAME,
            Col("Schedule", "string", 0, "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
            Col("Timezone", "string", 0, "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
            Col("Suspend", "boolean", 0, "This flag tells the controller to suspend subsequent executions."),
            Col("Active", "integer", 0, "A list of pointers to currently running jobs."),
            Col("Last Schedule", "string", 0, "Information when was the last time the job was successfully scheduled."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        "EndpointSlice" => vec![
            NAME,
            Col("AddressType", "string", 0, "addressType specifies the type of address carried by this EndpointSlice."),
            Col("Ports", "string", 0, "ports specifies the list of network ports exposed by each endpoint in this slice."),
            Col("Endpoints", "string", 0, "endpoints is a list of unique endpoints in this slice."),
            AGE,
        ],
        "Lease" => vec![
            NAME,
            Col("Holder", "string", 0, "holderIdentity contains the identity of the holder of a current lease."),
            AGE,
        ],
        "Ingress" => vec![
            NAME,
            Col("Class", "string", 0, "The name of the IngressClass resource that should be used for additional configuration"),
            Col("Hosts", "string", 0, "Hosts that incoming requests are matched against before the ingress rule"),
            Col("Address", "string", 0, "Address is a list containing ingress points for the load-balancer"),
            Col("Ports", "string", 0, "Ports of TLS configurations that open"),
            AGE,
        ],
        "IngressClass" => vec![
            NAME,
            Col("Controller", "string", 0, "Controller that is responsible for handling this class"),
            Col("Parameters", "string", 0, "A reference to a resource with additional parameters"),
            AGE,
        ],
        "NetworkPolicy" => vec![
            NAME,
            Col("Pod-Selector", "string", 0, "podSelector selects the pods to which this NetworkPolicy object applies."),
            AGE,
        ],
        "RoleBinding" | "ClusterRoleBinding" => vec![
            NAME,
            Col("Role", "string", 0, "RoleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable."),
            AGE,
            Col("Users", "string", 1, "Users in the roleBinding"),
            Col("Groups", "string", 1, "Groups in the roleBinding"),
            Col("ServiceAccounts", "string", 1, "ServiceAccounts in the roleBinding"),
        ],
        // The apiserver's default table for kinds without a printer.
        _ => vec![NAME, Col("Created At", "date", 0, AGE_DOC)],
    }
}

/// The `TableColumnDefinition`s for a resource.
pub fn columns(resource: &Resource) -> Vec<Value> {
    kind_columns(resource.kind)
        .into_iter()
        .map(|Col(name, ty, priority, description)| {
            let format = if name == "Name" { "name" } else { "" };
            json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinet_types::RESOURCES;

    #[test]
    fn every_kind_has_named_columns() {
        // LimitRanges have no printer upstream either: the apiserver's default NAME / CREATED AT.
        const DEFAULT_TABLE: &[&str] = &["LimitRange"];
        for r in RESOURCES
            .iter()
            .filter(|r| !DEFAULT_TABLE.contains(&r.kind))
        {
            let cols = columns(r);
            assert!(cols.len() >= 2, "{}", r.kind);
            let first = if r.kind == "Event" {
                "Last Seen"
            } else {
                "Name"
            };
            assert_eq!(cols[0]["name"], first, "{}", r.kind);
            let names: Vec<&str> = cols.iter().filter_map(|c| c["name"].as_str()).collect();
            assert!(names.contains(&"Name"), "{}", r.kind);
            // kube-apiserver prints CRDs with its default table too; Roles' own printer has the
            // default's columns (`roleColumnDefinitions`).
            if matches!(r.kind, "CustomResourceDefinition" | "Role" | "ClusterRole") {
                continue;
            }
            assert_ne!(
                kind_columns(r.kind)[1].0,
                "Created At",
                "{} has no printer",
                r.kind
            );
        }
    }

    #[test]
    fn pod_columns_match_kube() {
        let pods = kinet_types::registry::lookup("", "v1", "pods").unwrap();
        let cols = columns(pods);
        let got: Vec<(String, i64)> = cols
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["priority"].as_i64().unwrap(),
                )
            })
            .collect();
        let want = [
            ("Name", 0),
            ("Ready", 0),
            ("Status", 0),
            ("Restarts", 0),
            ("Age", 0),
            ("IP", 1),
            ("Node", 1),
            ("Nominated Node", 1),
            ("Readiness Gates", 1),
        ];
        assert_eq!(got, want.map(|(n, p)| (n.to_string(), p)));
        assert_eq!(cols[0]["format"], "name");
        assert_eq!(cols[1]["format"], "");
    }
}
