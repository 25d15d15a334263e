use super::*;

#[test]
fn only_sigkill_leaves_the_agent_dead() {
    assert!(restarts(Exit::Code(1)));
    assert!(restarts(Exit::Code(0)));
    assert!(restarts(Exit::Signal(Signal::SIGTERM as i32)));
    assert!(restarts(Exit::Signal(Signal::SIGSEGV as i32)));
    assert!(!restarts(Exit::Signal(Signal::SIGKILL as i32)));
}

#[test]
fn exits_read_as_a_person_says_them() {
    assert_eq!(Exit::Code(1).to_string(), "exit code 1");
    assert_eq!(
        Exit::Signal(Signal::SIGKILL as i32).to_string(),
        "killed by SIGKILL"
    );
    assert_eq!(Exit::Signal(99).to_string(), "killed by signal 99");
}

#[test]
fn backoff_doubles_to_a_cap_and_resets_after_a_healthy_run() {
    let s = Duration::from_secs;
    let quick = s(2);
    assert_eq!(BACKOFF.next(None, quick), s(1));
    let mut b = None;
    let mut seen = Vec::new();
    for _ in 0..7 {
        let next = BACKOFF.next(b, quick);
        seen.push(next.as_secs());
        b = Some(next);
    }
    assert_eq!(seen, [1, 2, 4, 8, 16, 30, 30]);
    assert_eq!(BACKOFF.next(Some(s(30)), BACKOFF.reset_after), s(1));
}

fn record(state: AgentState) -> Record {
    Record {
        state,
        restarts: 2,
        last_exit: Some("exit code 1".into()),
        last_error: Some("Error: boom".into()),
        ..Record::default()
    }
}

#[test]
fn status_combines_the_processes_and_the_record() {
    let running = agent_status(Some(record(AgentState::Restarting)), Some(7), true);
    assert_eq!((running.state, running.pid), (AgentState::Running, Some(7)));
    assert_eq!(running.restarts, 2);
    // Between the agent's exit and the supervisor's record.
    let s = agent_status(Some(record(AgentState::Running)), None, true);
    assert_eq!(s.state, AgentState::Restarting);
    let s = agent_status(Some(record(AgentState::Restarting)), None, true);
    assert_eq!(s.state, AgentState::Restarting);
    assert_eq!(s.last_error.as_deref(), Some("Error: boom"));
    // Nothing will restart it.
    let s = agent_status(Some(record(AgentState::Restarting)), None, false);
    assert_eq!(s.state, AgentState::Failed);
    assert_eq!(agent_status(None, None, false).state, AgentState::Failed);
    let s = agent_status(Some(record(AgentState::Stopped)), None, false);
    assert_eq!(s.state, AgentState::Stopped);
}

#[test]
fn records_round_trip_as_json() {
    let r = record(AgentState::Failed);
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains(r#""state":"failed""#), "{json}");
    assert_eq!(serde_json::from_str::<Record>(&json).unwrap(), r);
}

#[test]
fn the_last_error_is_the_last_error_line_else_the_last_line() {
    let lines = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let tail = lines(&[
        "2026-01-01T00:00:00Z ERROR kinet_agent: lost the API",
        "2026-01-01T00:00:01Z  INFO kinet_agent: retrying",
        "Error: reading /x/kubeconfig: invalid",
        "2026-01-01T00:00:02Z  WARN kinet_cluster::supervisor: agent ended",
    ]);
    assert_eq!(
        last_error(&tail).as_deref(),
        Some("Error: reading /x/kubeconfig: invalid")
    );
    let quiet = lines(&["a", "agent stopping (SIGTERM)"]);
    assert_eq!(
        last_error(&quiet).as_deref(),
        Some("agent stopping (SIGTERM)")
    );
    assert_eq!(last_error(&[]), None);
}
