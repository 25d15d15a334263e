//! Placeholder until this loop lands.

/// Runs the loop.
pub async fn run(_client: kube::Client, _config: crate::ControllerConfig) -> anyhow::Result<()> {
    std::future::pending().await
}
