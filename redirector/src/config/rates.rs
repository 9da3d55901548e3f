//! Rate limits per client class, as `[policy]` writes them:
//!
//! ```toml
//! [policy]
//! syn_rate = { default = "100/s", unknown = "20/s", "aws/us-east-1" = "1000/s" }
//! syn_burst = { default = 200 }
//! request_rate = { default = "5000/m" }
//! ```
//!
//! A rate is `N/s`, `N/m` or `N/h` (N may have decimals), per source
//! address; its burst (how many at once) defaults to one second's worth,
//! at least 1. Keys are `default` (every class not named), `unknown` (no
//! feed covers the address) or `provider/region`.

use std::collections::BTreeMap;

use steer_user::{Class, Policy};

/// The fastest rate accepted: a million a second (the kernel's bound).
pub const MAX_PER_SECOND: f64 = 1e6;

/// A token bucket's refill and size.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

impl Rate {
    /// Thousandths per second, as the kernel's policy holds it (at least
    /// 1: a limit never becomes "no limit").
    pub fn milli(&self) -> u64 {
        ((self.per_second * 1000.0).round() as u64).max(1)
    }
}

/// Limits by class: the named ones, and the default for the rest.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClassRates {
    pub default: Option<Rate>,
    /// `Class::unknown()` for the `unknown` key.
    pub classes: BTreeMap<Class, Rate>,
}

impl ClassRates {
    pub fn is_empty(&self) -> bool {
        self.default.is_none() && self.classes.is_empty()
    }

    /// The limit of `class`, if any.
    pub fn of(&self, class: &Class) -> Option<Rate> {
        self.classes.get(class).copied().or(self.default)
    }

    /// Every limit by the key the config names it with: `default` first,
    /// then `unknown` or `provider/region` (as `Class` displays them).
    pub fn entries(&self) -> impl Iterator<Item = (String, &Rate)> {
        let named = self.classes.iter().map(|(c, r)| (c.to_string(), r));
        self.default
            .iter()
            .map(|r| ("default".to_owned(), r))
            .chain(named)
    }

    /// For `check-config`: `default 100/s (burst 200), aws/x 5/s (burst 5)`.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .entries()
            .map(|(name, r)| format!("{name} {}/s (burst {})", r.per_second, r.burst))
            .collect();
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// `[policy] <key>_rate` and `<key>_burst` into limits; errors name the
/// key and the entry.
pub fn parse(
    key: &str,
    rates: &BTreeMap<String, String>,
    bursts: &BTreeMap<String, u32>,
) -> Result<ClassRates, String> {
    let mut out = ClassRates::default();
    for name in bursts.keys() {
        // A default burst goes with any rate; a named one with its own.
        let has_rate = rates.contains_key(name) || (name == "default" && !rates.is_empty());
        if !has_rate {
            return Err(format!(
                "policy.{key}_burst.{name}: no policy.{key}_rate.{name} to go with it"
            ));
        }
    }
    for (name, text) in rates {
        let per_second = per_second(text).map_err(|e| format!("policy.{key}_rate.{name}: {e}"))?;
        let burst = match bursts.get(name).or_else(|| bursts.get("default")) {
            Some(0) => return Err(format!("policy.{key}_burst.{name}: must be at least 1")),
            Some(b) => *b,
            None => per_second.ceil().clamp(1.0, u32::MAX as f64) as u32,
        };
        let rate = Rate { per_second, burst };
        match name.as_str() {
            "default" => out.default = Some(rate),
            "unknown" => {
                out.classes.insert(Class::unknown(), rate);
            }
            n => {
                let (provider, region) = n
                    .split_once('/')
                    .filter(|(p, r)| !p.is_empty() && !r.is_empty() && !r.contains('/'))
                    .ok_or_else(|| {
                        format!(
                            "policy.{key}_rate: `{n}` is not provider/region, `default` or `unknown`"
                        )
                    })?;
                out.classes.insert(
                    Class {
                        provider: provider.to_owned(),
                        region: region.to_owned(),
                    },
                    rate,
                );
            }
        }
    }
    Ok(out)
}

/// `100/s`, `5000/m`, `0.5/s`, `36000/h`.
fn per_second(text: &str) -> Result<f64, String> {
    let (n, unit) = text
        .trim()
        .split_once('/')
        .ok_or_else(|| format!("`{text}` is not a rate such as \"100/s\" or \"5000/m\""))?;
    let n: f64 = n
        .trim()
        .parse()
        .map_err(|_| format!("`{text}`: `{n}` is not a number"))?;
    let seconds = match unit.trim() {
        "s" | "sec" | "second" => 1.0,
        "m" | "min" | "minute" => 60.0,
        "h" | "hour" => 3600.0,
        u => return Err(format!("`{text}`: `{u}` is not s, m or h")),
    };
    let per_second = n / seconds;
    if !per_second.is_finite() || per_second <= 0.0 {
        return Err(format!(
            "`{text}` must be more than zero (to refuse a class, use policy.drop)"
        ));
    }
    if per_second > MAX_PER_SECOND {
        return Err(format!("`{text}` is more than a million a second"));
    }
    Ok(per_second)
}

/// What the kernel does with each class's SYNs: `drop` drops them all, a
/// SYN limit applies to the rest. The default covers every class not
/// named, unknown included unless `unknown` is named.
pub fn kernel_policies(drop: &[Class], syn: &ClassRates) -> (Policy, BTreeMap<Class, Policy>) {
    let limit = |r: &Rate| Policy::limit(r.milli(), r.burst);
    let default = syn.default.as_ref().map_or(Policy::PASS, limit);
    let mut named: BTreeMap<Class, Policy> = syn
        .classes
        .iter()
        .map(|(c, r)| (c.clone(), limit(r)))
        .collect();
    for c in drop {
        named.insert(c.clone(), Policy::DROP);
    }
    (default, named)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rates(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn rates_as_operators_write_them() {
        let r = parse(
            "syn",
            &rates(&[
                ("default", "100/s"),
                ("unknown", "20/s"),
                ("aws/us-east-1", "5000/m"),
            ]),
            &BTreeMap::from([("default".to_owned(), 200)]),
        )
        .unwrap();
        assert_eq!(
            r.default,
            Some(Rate {
                per_second: 100.0,
                burst: 200
            })
        );
        assert_eq!(r.of(&Class::unknown()).map(|r| r.per_second), Some(20.0));
        let east = Class {
            provider: "aws".into(),
            region: "us-east-1".into(),
        };
        let east_rate = r.of(&east).unwrap();
        assert!((east_rate.per_second - 83.333).abs() < 0.001);
        assert_eq!(east_rate.milli(), 83_333);
        // No burst of its own: the default's.
        assert_eq!(east_rate.burst, 200);
        // Without any burst: one second's worth, at least one.
        let r = parse(
            "request",
            &rates(&[("default", "0.5/s"), ("a/b", "36000/h")]),
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(r.default.unwrap().burst, 1);
        assert_eq!(r.classes.values().next().unwrap().burst, 10);
    }

    #[test]
    fn bad_rates_are_named() {
        let none = BTreeMap::new();
        for (name, rate, says) in [
            (
                "no unit",
                "100",
                "policy.syn_rate.default: `100` is not a rate",
            ),
            ("bad unit", "100/d", "`d` is not s, m or h"),
            ("zero", "0/s", "must be more than zero"),
            ("too fast", "2000000/s", "more than a million"),
            ("not a number", "x/s", "`x` is not a number"),
        ] {
            let e = parse("syn", &rates(&[("default", rate)]), &none).unwrap_err();
            assert!(e.contains(says), "{name}: {e}");
        }
        let e = parse("syn", &rates(&[("aws", "1/s")]), &none).unwrap_err();
        assert!(e.contains("`aws` is not provider/region"), "{e}");
        let e = parse(
            "syn",
            &rates(&[("a/b", "1/s")]),
            &BTreeMap::from([("c/d".to_owned(), 3)]),
        )
        .unwrap_err();
        assert!(
            e.contains("policy.syn_burst.c/d: no policy.syn_rate.c/d"),
            "{e}"
        );
        let e = parse(
            "syn",
            &rates(&[("a/b", "1/s")]),
            &BTreeMap::from([("a/b".to_owned(), 0)]),
        )
        .unwrap_err();
        assert!(e.contains("at least 1"), "{e}");
    }

    #[test]
    fn drop_wins_over_a_limit_and_the_default_covers_the_rest() {
        let a = Class {
            provider: "a".into(),
            region: "b".into(),
        };
        let syn = ClassRates {
            default: Some(Rate {
                per_second: 10.0,
                burst: 20,
            }),
            classes: BTreeMap::from([(
                a.clone(),
                Rate {
                    per_second: 1.0,
                    burst: 1,
                },
            )]),
        };
        let (default, named) = kernel_policies(std::slice::from_ref(&a), &syn);
        assert_eq!(default, Policy::limit(10_000, 20));
        assert_eq!(named.get(&a), Some(&Policy::DROP));
        let (default, named) = kernel_policies(&[], &ClassRates::default());
        assert_eq!((default, named.len()), (Policy::PASS, 0));
    }
}
