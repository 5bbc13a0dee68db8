//! `.dockerignore` as Docker reads it: one pattern a line, `#` comments, `!` re-includes,
//! `*`/`?`/`[…]` within one path element, `**` across any number of them; the last matching
//! pattern decides, and a pattern that matches a directory matches everything under it.

#[derive(Debug, Default)]
pub(crate) struct Dockerignore {
    patterns: Vec<Pattern>,
}

#[derive(Debug)]
struct Pattern {
    tokens: Vec<Token>,
    exclude: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Char(char),
    /// `?`: one character other than `/`.
    One,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**/` (or `**` inside a pattern): any number of whole path elements, even none.
    Dirs,
    /// `**` at the end: anything at all.
    All,
    /// `[…]`: (negated, ranges).
    Class(bool, Vec<(char, char)>),
}

impl Dockerignore {
    pub(crate) fn parse(text: &str) -> Dockerignore {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclude, pattern) = match line.strip_prefix('!') {
                Some(rest) => (false, rest.trim()),
                None => (true, line),
            };
            let pattern = clean(pattern);
            if pattern.is_empty() || pattern == "." {
                continue;
            }
            patterns.push(Pattern { tokens: tokenize(&pattern), exclude });
        }
        Dockerignore { patterns }
    }

    /// Whether `path` (relative, `/`-separated) is left out of the build context.
    pub(crate) fn excludes(&self, path: &str) -> bool {
        let mut excluded = false;
        for pattern in &self.patterns {
            if pattern.matches_or_parent(path) {
                excluded = pattern.exclude;
            }
        }
        excluded
    }

    /// Whether some `!` pattern could bring back a file under an excluded directory, in which
    /// case the directory must still be walked.
    pub(crate) fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| !p.exclude)
    }
}

impl Pattern {
    fn matches_or_parent(&self, path: &str) -> bool {
        if matches(&self.tokens, &path.chars().collect::<Vec<_>>()) {
            return true;
        }
        // `build` also leaves out `build/x/y`.
        path.match_indices('/')
            .any(|(at, _)| matches(&self.tokens, &path[..at].chars().collect::<Vec<_>>()))
    }
}

/// Docker's cleaning: no leading `/` or `./`, no trailing `/`, `a//b` → `a/b`, `a/./b` → `a/b`,
/// `a/../b` → `b`.
fn clean(pattern: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    parts.join("/")
}

fn tokenize(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                tokens.push(if i >= chars.len() { Token::All } else { Token::Dirs });
                continue;
            }
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::One),
            '\\' if i + 1 < chars.len() => {
                i += 1;
                tokens.push(Token::Char(chars[i]));
            }
            '[' => {
                if let Some((token, next)) = class(&chars, i) {
                    tokens.push(token);
                    i = next;
                    continue;
                }
                tokens.push(Token::Char('['));
            }
            c => tokens.push(Token::Char(c)),
        }
        i += 1;
    }
    tokens
}

/// `[!a-z_]` starting at `start`: the token and the index after `]`.
fn class(chars: &[char], start: usize) -> Option<(Token, usize)> {
    let mut i = start + 1;
    let negated = matches!(chars.get(i), Some('!') | Some('^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    while i < chars.len() {
        let c = chars[i];
        if c == ']' && !first {
            return Some((Token::Class(negated, ranges), i + 1));
        }
        first = false;
        let c = if c == '\\' && i + 1 < chars.len() {
            i += 1;
            chars[i]
        } else {
            c
        };
        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|&e| e != ']') {
            ranges.push((c, chars[i + 2]));
            i += 3;
        } else {
            ranges.push((c, c));
            i += 1;
        }
    }
    None
}

fn matches(tokens: &[Token], path: &[char]) -> bool {
    let Some((token, rest)) = tokens.split_first() else {
        return path.is_empty();
    };
    match token {
        Token::Char(c) => path.first() == Some(c) && matches(rest, &path[1..]),
        Token::One => path.first().is_some_and(|&c| c != '/') && matches(rest, &path[1..]),
        Token::Class(negated, ranges) => {
            path.first().is_some_and(|&c| {
                c != '/' && ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
            }) && matches(rest, &path[1..])
        }
        Token::Star => {
            // Try every split within the current path element.
            let limit = path.iter().position(|&c| c == '/').unwrap_or(path.len());
            (0..=limit).any(|n| matches(rest, &path[n..]))
        }
        Token::Dirs => {
            // Zero elements, or up to (and including) any later `/`.
            matches(rest, path)
                || path
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c == '/')
                    .any(|(at, _)| matches(rest, &path[at + 1..]))
        }
        Token::All => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_semantics() {
        let ignore = Dockerignore::parse(
            "# comment\n\nnode_modules\n/dist/\n*.log\n**/__pycache__\ndocs/**/*.md\n!docs/keep.md\n\
             tmp?\n[abc].txt\n./secrets/../private\n",
        );
        for path in [
            "node_modules",
            "node_modules/x/index.js",
            "dist/app.js",
            "error.log",
            "__pycache__/a.pyc",
            "pkg/deep/__pycache__/a.pyc",
            "docs/a.md",
            "docs/x/y/b.md",
            "tmp1",
            "b.txt",
            "private/key",
        ] {
            assert!(ignore.excludes(path), "{path} should be excluded");
        }
        for path in [
            "src/node_modules.txt",
            "logs/error.txt",
            "sub/error.log",
            "docs/keep.md",
            "docs/a.txt",
            "tmp12",
            "d.txt",
            "app.py",
            "secrets/x",
        ] {
            assert!(!ignore.excludes(path), "{path} should be kept");
        }
        assert!(ignore.has_exceptions());
    }

    #[test]
    fn last_match_wins_and_everything_can_be_excluded() {
        let ignore = Dockerignore::parse("*\n!app.py\n!src\n");
        assert!(ignore.excludes("README.md"));
        assert!(!ignore.excludes("app.py"));
        assert!(!ignore.excludes("src/main.py"));
        let all = Dockerignore::parse("**\n");
        assert!(all.excludes("a/b/c"));
        assert!(!Dockerignore::parse("").excludes("a"));
        assert!(!Dockerignore::parse("[z-a\n").excludes("a"));
    }
}
