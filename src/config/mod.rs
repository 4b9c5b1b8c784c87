//! Typed configuration: built-in defaults, overridden by one TOML file, overridden
//! by `FORGE_<SECTION>__<KEY>` environment variables, then checked by
//! [`Config::validate`]. The invariants: every key has a safe default (an empty
//! file runs a local trial); a bad start-up input is a [`ConfigError`] whose
//! `Display` is one line naming the dotted key and where it came from (the file
//! or the variable), never a panic, a multi-line parser excerpt or a secret;
//! and the only serialised form of a config is the redacted one, because
//! [`Secret`](crate::secret::Secret) serialises as `***`.
//!
//! Why the errors are found key by key: serde and `toml` report the first
//! failure with a message but no key path. On failure the merged tree is
//! re-deserialised one key at a time (every field has a default, so a tree
//! holding a single key is a valid config on its own), which pins the culprit
//! to its full dotted path without another dependency.
//!
//! The module is split by job: `values` holds the typed keys and their
//! defaults, `formats` how durations, rates and address lists are written,
//! `load` the layering of file and environment with the origin of every
//! key, `error` the one-line errors and how a failed parse is pinned to a
//! key, and `validate` the rules types cannot express.

mod error;
mod formats;
mod load;
mod validate;
mod values;

pub use error::ConfigError;
pub use formats::{ParseRateError, Rate};
pub use values::*;

#[cfg(test)]
mod test_support {
    use super::*;

    pub const SECRET: &str = "s3cr3t-value-that-is-long-enough-for-hs256";

    pub fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    pub fn file(text: &str) -> Result<Config, ConfigError> {
        Config::from_sources(Some(("forge.toml", text)), Vec::new())
    }

    pub fn file_err(text: &str) -> String {
        let err = file(text).unwrap_err().to_string();
        assert!(!err.contains('\n'), "multi-line error: {err}");
        err
    }

    pub fn resolved_default() -> Config {
        let mut config = Config::default();
        config.resolve();
        config
    }
}
