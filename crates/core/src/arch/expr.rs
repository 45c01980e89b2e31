//! Integer arithmetic over config values, for the few parameters a family table describes as a
//! formula (`layer_extra = "h * heads + heads"`: Doge's dt_proj and A). `+ - * /` (integer
//! division), parentheses, numbers, `max(a, b)`, `min(a, b)`, `log2(a)` (rounded down),
//! `len(key)` (a list's length), `f(key)` for a function of a config key the caller resolves as
//! "f:key" (towers.rs `vqgan(vq_config)`), and names: the mapping's own (`h` hidden, `heads`,
//! `kv`, `d` head_dim, `i` intermediate, `v` vocabulary, `layers`) or any integer or boolean
//! (1/0) config key, dotted to reach into a nested config (`qformer_config.hidden_size`).
//!
//! Written here rather than taken from a crate: the expression crates of standing are AGPL
//! (evalexpr) or unmaintained (meval), and this needs forty lines of integers.

use super::ArchError;

/// Evaluates `text`; `name` resolves identifiers.
pub fn eval(text: &str, name: &dyn Fn(&str) -> Result<u64, ArchError>) -> Result<u64, ArchError> {
    let tokens = tokenize(text)?;
    let mut p = Parser {
        tokens,
        pos: 0,
        name,
    };
    let v = p.sum()?;
    if p.pos != p.tokens.len() {
        return Err(bad(text));
    }
    Ok(v)
}

fn bad(text: &str) -> ArchError {
    ArchError::model(format!(
        "architecture table: cannot read the formula '{text}'"
    ))
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(u64),
    Name(String),
    Op(char),
}

fn tokenize(text: &str) -> Result<Vec<Tok>, ArchError> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            out.push(Tok::Num(s.parse().map_err(|_| bad(text))?));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            out.push(Tok::Name(chars[start..i].iter().collect()));
        } else if "+-*/(),".contains(c) {
            out.push(Tok::Op(c));
            i += 1;
        } else {
            return Err(bad(text));
        }
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: Vec<Tok>,
    pos: usize,
    name: &'a dyn Fn(&str) -> Result<u64, ArchError>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }

    fn sum(&mut self) -> Result<u64, ArchError> {
        let mut v = self.product()?;
        while let Some(Tok::Op(op @ ('+' | '-'))) = self.peek().cloned() {
            self.pos += 1;
            let r = self.product()?;
            v = if op == '+' {
                v.saturating_add(r)
            } else {
                v.saturating_sub(r)
            };
        }
        Ok(v)
    }

    fn product(&mut self) -> Result<u64, ArchError> {
        let mut v = self.atom()?;
        while let Some(Tok::Op(op @ ('*' | '/'))) = self.peek().cloned() {
            self.pos += 1;
            let r = self.atom()?;
            v = if op == '*' {
                v.saturating_mul(r)
            } else {
                v.checked_div(r).unwrap_or(0)
            };
        }
        Ok(v)
    }

    /// Consumes the `)` that closes a group, giving the group's value.
    fn close(&mut self, v: u64) -> Result<u64, ArchError> {
        match self.peek() {
            Some(Tok::Op(')')) => {
                self.pos += 1;
                Ok(v)
            }
            _ => Err(ArchError::model(
                "architecture table: unbalanced parentheses",
            )),
        }
    }

    fn atom(&mut self) -> Result<u64, ArchError> {
        let t = self.peek().cloned();
        self.pos += 1;
        match t {
            Some(Tok::Num(n)) => Ok(n),
            Some(Tok::Name(f)) if self.peek() == Some(&Tok::Op('(')) => {
                self.pos += 1;
                let v = match f.as_str() {
                    "max" | "min" => {
                        let a = self.sum()?;
                        if self.peek() != Some(&Tok::Op(',')) {
                            return Err(ArchError::model(format!(
                                "architecture table: {f}() takes two values"
                            )));
                        }
                        self.pos += 1;
                        let b = self.sum()?;
                        if f == "max" {
                            a.max(b)
                        } else {
                            a.min(b)
                        }
                    }
                    // ⌊log2 x⌋ (a count of halving stages), 0 for 0.
                    "log2" => {
                        let a = self.sum()?;
                        a.checked_ilog2().map_or(0, u64::from)
                    }
                    // A function of a config key (`len(key)`, a list's length; a module a
                    // table's code sizes from a nested config): the resolver answers
                    // "<function>:<key>".
                    other => match self.tokens.get(self.pos).cloned() {
                        Some(Tok::Name(key)) => {
                            self.pos += 1;
                            (self.name)(&format!("{other}:{key}"))?
                        }
                        _ => {
                            return Err(ArchError::model(format!(
                                "architecture table: {other}() takes a config key"
                            )))
                        }
                    },
                };
                self.close(v)
            }
            Some(Tok::Name(n)) => (self.name)(&n),
            Some(Tok::Op('(')) => {
                let v = self.sum()?;
                self.close(v)
            }
            _ => Err(ArchError::model("architecture table: a formula ends early")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_and_names() {
        let names = |n: &str| match n {
            "h" => Ok(1024),
            "heads" => Ok(8),
            _ => Err(ArchError::model(format!("unknown {n}"))),
        };
        assert_eq!(eval("h * heads + heads", &names).unwrap(), 8200);
        assert_eq!(eval("2 * (h + 1) / 3", &names).unwrap(), 683);
        assert_eq!(eval("7 - 10", &names).unwrap(), 0);
        assert!(eval("h +", &names).is_err());
        assert!(eval("h $ 2", &names).is_err());
        assert!(eval("nope", &names).is_err());
        assert_eq!(eval("max(h, 2 * h) + min(heads, 3)", &names).unwrap(), 2051);
        let lists = |n: &str| match n {
            "len:ids" => Ok(4),
            _ => Err(ArchError::model(format!("unknown {n}"))),
        };
        assert_eq!(eval("2 * len(ids)", &lists).unwrap(), 8);
        assert!(eval("len(3)", &lists).is_err());
        assert!(eval("sqrt(ids)", &lists).is_err());
        assert_eq!(eval("log2(8) + log2(9) + log2(0)", &lists).unwrap(), 6);
    }
}
