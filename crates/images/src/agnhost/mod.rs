//! agnhost, Kubernetes' e2e test image: the `netexec`, `serve-hostname` and `pause`
//! subcommands, answering as `test/images/agnhost` does.

pub mod dial;
pub mod netexec;
pub mod serve_hostname;

use chrono::Utc;

use crate::flags::FlagError;
use crate::logfmt::go_log_prefix;
use crate::plan::Error;

/// An agnhost invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `agnhost netexec`.
    Netexec(netexec::Config),
    /// `agnhost serve-hostname`.
    ServeHostname(serve_hostname::Config),
    /// `agnhost pause`.
    Pause,
}

impl Command {
    /// Parses the arguments after `/agnhost`.
    pub fn parse(args: &[String]) -> Result<Command, Error> {
        let Some((subcommand, flags)) = args.split_first() else {
            return Err(Error::UnsupportedSubcommand(String::new()));
        };
        let invalid = |e: FlagError| Error::InvalidArgs {
            program: format!("agnhost {subcommand}"),
            message: e.0,
        };
        match subcommand.as_str() {
            "netexec" => netexec::Config::parse(flags)
                .map(Command::Netexec)
                .map_err(invalid),
            "serve-hostname" => serve_hostname::Config::parse(flags)
                .map(Command::ServeHostname)
                .map_err(invalid),
            "pause" => {
                crate::flags::Flags::parse(flags, &[]).map_err(invalid)?;
                Ok(Command::Pause)
            }
            other => Err(Error::UnsupportedSubcommand(other.to_string())),
        }
    }
}

/// Go's `log.Printf`: a timestamped line on stderr.
pub(crate) fn log(message: &str) {
    crate::server::stderr_line(&format!("{}{message}", go_log_prefix(Utc::now())));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn subcommands() {
        assert_eq!(Command::parse(&s(&["pause"])), Ok(Command::Pause));
        assert!(matches!(
            Command::parse(&s(&["netexec", "--http-port=80"])),
            Ok(Command::Netexec(c)) if c.http_port == 80
        ));
        assert!(matches!(
            Command::parse(&s(&["serve-hostname"])),
            Ok(Command::ServeHostname(c)) if c.port == 9376
        ));
        assert_eq!(
            Command::parse(&s(&["liveness"])),
            Err(Error::UnsupportedSubcommand("liveness".into()))
        );
        assert_eq!(
            Command::parse(&[]),
            Err(Error::UnsupportedSubcommand(String::new()))
        );
        assert_eq!(
            Command::parse(&s(&["pause", "--x"])),
            Err(Error::InvalidArgs {
                program: "agnhost pause".into(),
                message: "unknown flag: --x".into()
            })
        );
    }
}
