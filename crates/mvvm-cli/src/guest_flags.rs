//! Flags that describe a fresh guest's world: arguments, environment, and
//! the host capabilities it is granted ([`GrantFlags`], which
//! `mvvm-restore` takes too: a restored guest's arguments and environment
//! come from its snapshot).

use crate::grant_flags::GrantFlags;
use anyhow::{Context, Result, bail};
use clap::Args;

/// The guest's arguments, environment and capabilities.
#[derive(Debug, Clone, Args)]
pub struct GuestFlags {
    /// Guest arguments as one comma-separated list (`-a -g20,-n1000`); they
    /// come after the program name. Arguments after `--` are appended as
    /// they are (use that form for arguments containing commas).
    #[arg(
        short = 'a',
        long = "args",
        value_name = "ARGS",
        allow_hyphen_values = true
    )]
    pub args: Option<String>,

    /// Environment variables for the guest, `K=V`, repeated or
    /// comma-separated. The host's environment is not inherited.
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    pub env: Vec<String>,

    #[command(flatten)]
    pub grants: GrantFlags,

    /// Arguments passed to the guest verbatim.
    #[arg(last = true, value_name = "GUEST_ARGS")]
    pub rest: Vec<String>,
}

impl GuestFlags {
    /// The guest's argv after its program name.
    pub fn guest_args(&self) -> Vec<String> {
        let mut out: Vec<String> = match &self.args {
            Some(list) if !list.is_empty() => list.split(',').map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        out.extend(self.rest.iter().cloned());
        out
    }

    /// The guest's environment as `(key, value)` pairs, in order.
    pub fn guest_env(&self) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for item in self.env.iter().flat_map(|e| e.split(',')) {
            if item.is_empty() {
                continue;
            }
            let (k, v) = item
                .split_once('=')
                .with_context(|| format!("environment entry `{item}` is not K=V"))?;
            if k.is_empty() {
                bail!("environment entry `{item}` has an empty name");
            }
            out.push((k.to_owned(), v.to_owned()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        g: GuestFlags,
    }

    #[test]
    fn comma_separated_args_and_rest() {
        let t = T::try_parse_from(["x", "-a", "-g20,-n1000", "--", "a,b"]).unwrap();
        assert_eq!(t.g.guest_args(), ["-g20", "-n1000", "a,b"]);
    }

    #[test]
    fn env_pairs_repeated_and_comma_separated() {
        let t = T::try_parse_from(["x", "-e", "A=1,B=2", "-e", "C=x=y"]).unwrap();
        let env = t.g.guest_env().unwrap();
        assert_eq!(
            env,
            [
                ("A".into(), "1".into()),
                ("B".into(), "2".into()),
                ("C".into(), "x=y".into())
            ]
        );
        let bad = T::try_parse_from(["x", "-e", "nope"]).unwrap();
        assert!(bad.g.guest_env().is_err());
    }
}
