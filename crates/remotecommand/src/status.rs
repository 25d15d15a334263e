//! The final status written on the error channel, as the kubelet writes it.

use serde_json::{json, Value};

/// How the remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exit code 0.
    Success,
    /// A non-zero exit code: kubectl exits with it and prints "command terminated with exit code N".
    Code(i32),
    /// The command could not run or the session failed; kubectl prints the message.
    Error(String),
}

impl From<std::process::ExitStatus> for ExitStatus {
    fn from(s: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (s.code(), s.signal()) {
            (Some(0), _) => ExitStatus::Success,
            (Some(code), _) => ExitStatus::Code(code),
            // A shell reports death by signal N as 128+N; so does the kubelet's runtime.
            (None, Some(sig)) => ExitStatus::Code(128 + sig),
            (None, None) => ExitStatus::Error("process ended without a status".into()),
        }
    }
}

/// The metav1.Status JSON for v4/v5 error channels.
pub fn status_json(status: &ExitStatus) -> Value {
    match status {
        ExitStatus::Success => json!({"metadata": {}, "status": "Success"}),
        ExitStatus::Code(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        ExitStatus::Error(message) => json!({
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "InternalError",
            "code": 500,
        }),
    }
}

/// What v2/v3 SPDY error streams carry: nothing on success, else the error's text.
pub(crate) fn status_text(status: &ExitStatus) -> Option<String> {
    match status {
        ExitStatus::Success => None,
        ExitStatus::Code(code) => Some(format!(
            "command terminated with non-zero exit code: exit status {code}"
        )),
        ExitStatus::Error(message) => Some(message.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_zero_exit_carries_the_code_as_a_cause() {
        let s = status_json(&ExitStatus::Code(3));
        assert_eq!(s["status"], "Failure");
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(status_json(&ExitStatus::Success)["status"], "Success");
        assert_eq!(status_text(&ExitStatus::Success), None);
        assert!(status_text(&ExitStatus::Error("boom".into()))
            .unwrap()
            .contains("boom"));
    }

    #[test]
    fn process_status_maps_codes_and_signals() {
        use std::os::unix::process::ExitStatusExt;
        let code = |raw| ExitStatus::from(std::process::ExitStatus::from_raw(raw));
        assert_eq!(code(0), ExitStatus::Success);
        assert_eq!(code(3 << 8), ExitStatus::Code(3));
        assert_eq!(code(9), ExitStatus::Code(137));
    }
}
