//! Placeholder until this loop lands.

/// Runs the loop.
pub async fn run(_client: kube::Client) -> anyhow::Result<()> {
    std::future::pending().await
}
