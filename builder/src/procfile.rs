//! The Procfile: one `name: command` per line, as on Heroku.

use std::collections::BTreeMap;

use crate::BuildError;

/// Parses a Procfile into process type → command. Blank lines and `#` comments are allowed;
/// anything else that is not `name: command` is an error naming its line.
pub fn parse(text: &str) -> Result<BTreeMap<String, String>, BuildError> {
    let mut processes = BTreeMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let error = |message: String| BuildError::Procfile { line, message };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((name, command)) = trimmed.split_once(':') else {
            return Err(error(format!(
                "expected `name: command`, found {trimmed:?} (e.g. `web: python app.py`)"
            )));
        };
        let name = name.trim();
        let command = command.trim();
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(error(format!(
                "process type {name:?} must be letters, digits, `-` or `_` (like `web` or \
                 `worker`)"
            )));
        }
        if command.is_empty() {
            return Err(error(format!("process type `{name}` has no command")));
        }
        if processes.insert(name.to_string(), command.to_string()).is_some() {
            return Err(error(format!("process type `{name}` is declared twice")));
        }
    }
    Ok(processes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_commands_comments_and_blanks() {
        let text = "# processes\r\nweb: gunicorn app.wsgi --log-file -\n\n  worker:python worker.py  \n\
                    release: python manage.py migrate\nclock-2: echo a:b\n";
        let processes = parse(text).unwrap();
        assert_eq!(processes.len(), 4);
        assert_eq!(processes["web"], "gunicorn app.wsgi --log-file -");
        assert_eq!(processes["worker"], "python worker.py");
        assert_eq!(processes["release"], "python manage.py migrate");
        assert_eq!(processes["clock-2"], "echo a:b");
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn malformed_lines_name_their_line() {
        for (text, line, needle) in [
            ("web: ok\nthis is not a process\n", 2, "expected `name: command`"),
            ("\n\nweb:\n", 3, "has no command"),
            ("we b: x\n", 1, "letters, digits"),
            (": x\n", 1, "letters, digits"),
            ("web: a\n# c\nweb: b\n", 3, "declared twice"),
        ] {
            match parse(text) {
                Err(BuildError::Procfile { line: l, message }) => {
                    assert_eq!(l, line, "{text:?}");
                    assert!(message.contains(needle), "{message}");
                }
                other => panic!("{text:?} gave {other:?}"),
            }
        }
    }
}
