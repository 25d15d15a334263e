//! Which Ingresses this controller serves: those whose class (`spec.ingressClassName`, or the
//! deprecated `kubernetes.io/ingress.class` annotation) names an IngressClass of its
//! controller, and class-less ones when the default IngressClass is its own. With several
//! default classes the newest wins, as the admission plugin decides since Kubernetes 1.25.

use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

/// The annotation marking the default IngressClass.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The pre-1.18 way of naming an Ingress's class.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// The default IngressClass: of those annotated default, the newest (then the first by name).
pub fn default_class<'a>(classes: &[&'a IngressClass]) -> Option<&'a IngressClass> {
    classes
        .iter()
        .copied()
        .filter(|c| {
            c.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                .is_some_and(|v| v == "true")
        })
        .max_by(|a, b| {
            let ts = |c: &IngressClass| c.metadata.creation_timestamp.clone().map(|t| t.0);
            ts(a)
                .cmp(&ts(b))
                .then_with(|| b.metadata.name.cmp(&a.metadata.name))
        })
}

/// The class an Ingress asks for, if any.
pub fn class_name(ingress: &Ingress) -> Option<&str> {
    ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref())
        .or_else(|| {
            ingress
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
                .map(String::as_str)
        })
}

fn controller_of(class: &IngressClass) -> Option<&str> {
    class.spec.as_ref().and_then(|s| s.controller.as_deref())
}

/// Whether `controller` serves `ingress`.
pub fn served(ingress: &Ingress, classes: &[&IngressClass], controller: &str) -> bool {
    match class_name(ingress) {
        Some(name) => classes.iter().any(|c| {
            c.metadata.name.as_deref() == Some(name) && controller_of(c) == Some(controller)
        }),
        None => default_class(classes).and_then(controller_of) == Some(controller),
    }
}
