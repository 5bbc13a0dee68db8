//! The Procfile: one `name: command` per line, as on Heroku.

use std::collections::BTreeMap;

use crate::BuildError;

/// Longest command a Procfile may give. Commands run as one argument of `/bin/sh -c`, which
/// Linux caps at 128 KiB; refused here, not after a whole build at the process's start.
pub(crate) const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// Parses a Procfile into process type → command. Blank lines and `#` comments are allowed;
/// anything else that is not `name: command` is an error naming its line.
pub fn parse(text: &str) -> Result<BTreeMap<String, String>, BuildError> {
    // Windows editors may start the file with a byte-order mark; it is not part of the name.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
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
        check_command(name, command).map_err(error)?;
        if processes.insert(name.to_string(), command.to_string()).is_some() {
            return Err(error(format!("process type `{name}` is declared twice")));
        }
    }
    Ok(processes)
}

/// Why `command` of process type `name` could never start, if it could not: a command line
/// holds no NUL, is one line, and fits in the kernel's limit with room to spare. The same
/// rule for the Procfile and `paas.toml`.
pub(crate) fn check_command(name: &str, command: &str) -> Result<(), String> {
    if command.contains('\0') {
        return Err(format!(
            "the command of `{name}` contains a NUL byte, which no command line can hold"
        ));
    }
    if let Some(c) = command.chars().find(|c| c.is_control() && *c != '\t') {
        return Err(format!(
            "the command of `{name}` contains the control character {c:?}; a command is one \
             line of plain text"
        ));
    }
    if command.len() > MAX_COMMAND_BYTES {
        return Err(format!(
            "the command of `{name}` is {} bytes; commands are limited to {MAX_COMMAND_BYTES} \
             bytes (put a longer one in a script and run that)",
            command.len()
        ));
    }
    Ok(())
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

    #[test]
    fn commands_that_could_never_start_are_refused_with_their_line() {
        let long = format!("web: ok\nworker: echo {}\n", "x".repeat(MAX_COMMAND_BYTES));
        for (text, line, needle) in [
            ("web: ok\nworker: echo a\0b\n".to_string(), 2, "NUL"),
            ("web: echo \u{1b}[31m\n".to_string(), 1, "control character"),
            ("web: a\rb\n".to_string(), 1, "control character"),
            (long, 2, "65536 bytes"),
        ] {
            match parse(&text) {
                Err(BuildError::Procfile { line: l, message }) => {
                    assert_eq!(l, line, "{message}");
                    assert!(message.contains(needle), "{message}");
                }
                other => panic!("{:?} gave {other:?}", &text[..text.len().min(40)]),
            }
        }
        let tabs = parse("web:\tpython app.py\t--x\n").unwrap();
        assert_eq!(tabs["web"], "python app.py\t--x", "tabs are whitespace, not control");
        let longest = format!("web: {}\n", "x".repeat(MAX_COMMAND_BYTES));
        assert!(parse(&longest).is_ok());
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_line() {
        let processes = parse("\u{feff}web: python app.py\r\n").unwrap();
        assert_eq!(processes["web"], "python app.py");
    }
}
