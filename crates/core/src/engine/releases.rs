//! What vLLM's and SGLang's release-rule files have in common (data/engines/*.toml): release
//! numbers "0.X.Y" (".postN" and "vX" accepted), `[[rule]]` entries that apply from `since` until
//! the next entry of the same name, and `[[constant]]` observations with the records they were
//! read from. Each engine types its own rules (engine/vllm/rules.rs, engine/sglang.rs).

use serde::Deserialize;

/// A release 0.minor.patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    /// "0.19", "0.19.1", "v0.4.2.post1" (major 0 only; `engine` names the engine in errors).
    pub fn parse(text: &str, engine: &str) -> Result<Version, String> {
        let t = text.trim().trim_start_matches(['v', 'V']);
        let bad =
            || format!("{engine} version '{text}' is not a release number such as 0.19 or 0.19.1");
        let mut parts = t.split('.');
        let major: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let minor: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let patch: u32 = match parts.next() {
            None => 0,
            // "0.6.3.post1", "0.5.1rc2": keep the number.
            Some(p) => p
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|d| d.parse().ok())
                .ok_or_else(bad)?,
        };
        if major != 0 {
            return Err(format!(
                "{engine} {text} is not modelled: only 0.x releases exist so far"
            ));
        }
        Ok(Version { minor, patch })
    }

    pub fn name(&self) -> String {
        format!("0.{}.{}", self.minor, self.patch)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleEntry {
    pub name: String,
    pub since: String,
    pub value: String,
    pub source: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constant {
    pub name: String,
    /// MiB.
    pub value: u64,
    pub what: String,
    /// Calibration-file line numbers the value was read from.
    pub records: Vec<u32>,
    /// Records of another release or GPU the value was checked on.
    pub checked_on: Vec<u32>,
    pub source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    oldest: String,
    newest: String,
    rule: Vec<RuleEntry>,
    constant: Vec<Constant>,
}

/// A parsed rules file.
#[derive(Debug)]
pub struct RuleTable {
    pub oldest: Version,
    pub newest: Version,
    rules: Vec<(Version, RuleEntry)>,
    pub constants: Vec<Constant>,
    file: &'static str,
}

impl RuleTable {
    /// Parses `text`, the contents of data/engines/`file`.
    pub fn parse(text: &str, file: &'static str, engine: &str) -> Result<RuleTable, String> {
        let f: File = toml::from_str(text).map_err(|e| format!("data/engines/{file}: {e}"))?;
        let mut rules = Vec::with_capacity(f.rule.len());
        for r in f.rule {
            rules.push((Version::parse(&r.since, engine)?, r));
        }
        Ok(RuleTable {
            oldest: Version::parse(&f.oldest, engine)?,
            newest: Version::parse(&f.newest, engine)?,
            rules,
            constants: f.constant,
            file,
        })
    }

    /// The entry of `name` in force at `release`: the last one whose `since` is not after it.
    pub fn rule(&self, name: &str, release: Version) -> Result<&RuleEntry, String> {
        self.rules
            .iter()
            .filter(|(since, r)| r.name == name && *since <= release)
            .max_by_key(|(since, _)| *since)
            .map(|(_, r)| r)
            .ok_or_else(|| {
                format!(
                    "data/engines/{} has no '{name}' rule for {}",
                    self.file,
                    release.name()
                )
            })
    }

    /// The patch releases (X.Y.Z with Z > 0) at which some rule changes, in order.
    pub fn patch_releases(&self) -> Vec<Version> {
        let mut v: Vec<Version> = self
            .rules
            .iter()
            .map(|(v, _)| *v)
            .filter(|v| v.patch > 0)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// An observed constant, in bytes.
    pub fn constant(&self, name: &str) -> u64 {
        self.constant_entry(name)
            .map(|c| c.value << 20)
            .unwrap_or_else(|| panic!("data/engines/{} has no constant '{name}'", self.file))
    }

    pub fn constant_entry(&self, name: &str) -> Option<&Constant> {
        self.constants.iter().find(|c| c.name == name)
    }

    /// The error for a rule value the engine does not know.
    pub fn bad_value(&self, e: &RuleEntry) -> String {
        format!(
            "data/engines/{}: rule '{}' since {} has an unknown value '{}'",
            self.file, e.name, e.since, e.value
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let v = |t: &str| Version::parse(t, "vLLM");
        assert_eq!(
            v("v0.19.1").unwrap(),
            Version {
                minor: 19,
                patch: 1
            }
        );
        assert_eq!(v("0.4.2.post1").unwrap(), Version { minor: 4, patch: 2 });
        assert_eq!(
            v("0.20").unwrap(),
            Version {
                minor: 20,
                patch: 0
            }
        );
        assert!(v("1.0").unwrap_err().contains("not modelled"));
        assert!(v("banana").is_err());
    }
}
