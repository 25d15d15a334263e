//! Bodies captured from the real kubectl v1.32 (`kubectl -s http://127.0.0.1:PORT create ...`
//! against a server that saved each POST body), so the bytes are Go's gogo-protobuf encoding
//! with every zero value it writes. Each must decode to exactly what the same command prints
//! with `--dry-run=client -o json` (saved beside it), field order included.

fn check(name: &str, body: &[u8], kubectl_json: &str) {
    let got = kinet_protobuf::decode(body).unwrap_or_else(|e| panic!("{name}: {}", e.message));
    let want: serde_json::Value = serde_json::from_str(kubectl_json).unwrap();
    assert_eq!(got.to_string(), want.to_string(), "{name}");
}

macro_rules! captured {
    ($($test:ident: $file:literal,)*) => {$(
        #[test]
        fn $test() {
            check(
                $file,
                include_bytes!(concat!("data/", $file, ".pb")),
                include_str!(concat!("data/", $file, ".json")),
            );
        }
    )*};
}

captured! {
    // kubectl create configmap cm1 --from-literal=a=b --from-literal=c=d
    configmap: "configmap",
    // kubectl create secret generic s1 --from-literal=user=admin --from-literal=pw=s3cr3t --type=Opaque
    secret_generic: "secret-generic",
    // kubectl create secret docker-registry d1 --docker-server=r.io --docker-username=u --docker-password=p
    secret_docker_registry: "secret-docker",
    // kubectl create service nodeport web --tcp=80:8080 --tcp=443:https --node-port=30080
    service_nodeport: "service-nodeport",
    // kubectl create service clusterip none --clusterip=None
    service_headless: "service-headless",
    // kubectl create service loadbalancer lb --tcp=443:8443
    service_loadbalancer: "service-lb",
    // kubectl create service externalname ex --external-name=example.com
    service_externalname: "service-externalname",
    // kubectl create namespace ns1
    namespace: "namespace",
    // kubectl create serviceaccount sa1
    serviceaccount: "serviceaccount",
    // kubectl create deployment web --image=nginx --image=busybox --image=redis --replicas=0 --port=80
    deployment_zero_replicas: "deployment",
    // kubectl create deployment d2 --image=nginx
    deployment_default: "deployment-default",
    // kubectl create ingress ing --rule=foo.com/bar=svc1:8080,tls=my-cert --class=nginx
    ingress: "ingress",
    // kubectl create ingress ing2 --default-backend=def:http --rule=/path*=svc:http --annotation=a=b
    ingress_default_backend: "ingress-default-backend",
    // kubectl create role pod-reader --verb=get,list,watch --resource=pods,pods/log --resource-name=web
    role: "role",
    // kubectl create clusterrole widget-view --verb=get --resource=deployments.apps --non-resource-url=/logs/*
    clusterrole: "clusterrole",
    // kubectl create clusterrole monitoring --aggregation-rule=rbac.example.com/aggregate-to-monitoring=true
    clusterrole_aggregated: "clusterrole-aggregated",
    // kubectl create rolebinding x-view --clusterrole=view --serviceaccount=default:x --user=alice --group=devs
    rolebinding: "rolebinding",
    // kubectl create clusterrolebinding x-admin --clusterrole=admin --serviceaccount=default:x
    clusterrolebinding: "clusterrolebinding",
    // kubectl auth can-i list pods (no dry run prints these: the JSON is Go's encoding of the
    // review kubectl builds)
    selfsubjectaccessreview: "selfsubjectaccessreview",
    // kubectl auth can-i get /logs
    selfsubjectaccessreview_path: "selfsubjectaccessreview-path",
    // kubectl auth can-i --list -n default
    selfsubjectrulesreview: "selfsubjectrulesreview",
}

#[test]
fn truncated_capture_is_a_bad_request() {
    let body = include_bytes!("data/deployment.pb");
    for cut in [5, 20, body.len() / 2, body.len() - 1] {
        let err = kinet_protobuf::decode(&body[..cut]).unwrap_err();
        assert_eq!(err.code, 400, "cut at {cut}: {}", err.message);
    }
}
