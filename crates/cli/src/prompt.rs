//! Reading from the terminal: yes/no questions, menus, and secrets typed without echo (each
//! character shown as `*`).

use std::io::{self, BufRead, IsTerminal, Read, Write};

/// Whether stdin is an interactive terminal.
pub fn stdin_is_tty() -> bool {
    io::stdin().is_terminal()
}

/// Reads one line from stdin (without its line break).
pub fn read_line(prompt: &str) -> io::Result<Option<String>> {
    eprint!("{prompt}");
    io::stderr().flush()?;
    let mut line = String::new();
    if io::stdin().lock().read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\n', '\r']).to_owned()))
}

/// Reads all of stdin (for `--api-key -`).
pub fn read_all_stdin() -> io::Result<String> {
    let mut text = String::new();
    io::stdin().read_to_string(&mut text)?;
    Ok(text)
}

/// Restores the terminal's settings when dropped, even on an early return.
struct TermGuard {
    original: rustix::termios::Termios,
}

impl Drop for TermGuard {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.original,
        );
    }
}

/// Reads a secret from the terminal without echoing it; `*` is shown per character. Returns
/// `None` on Ctrl-C or end of input.
pub fn read_secret(prompt: &str) -> io::Result<Option<String>> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = io::stdin();
    let original = tcgetattr(&stdin)?;
    let mut raw = original.clone();
    raw.local_modes
        .remove(LocalModes::ECHO | LocalModes::ICANON);
    tcsetattr(&stdin, OptionalActions::Now, &raw)?;
    let _guard = TermGuard { original };
    let mut err = io::stderr();
    write!(err, "{prompt}")?;
    err.flush()?;
    let mut secret = String::new();
    let mut bytes = stdin.lock().bytes();
    loop {
        match bytes.next().transpose()? {
            None | Some(3) => {
                writeln!(err)?;
                return Ok(None);
            }
            Some(b'\n' | b'\r') => break,
            Some(127 | 8) => {
                if secret.pop().is_some() {
                    write!(err, "\u{8} \u{8}")?;
                }
            }
            Some(b) if b < 32 => {}
            Some(b) => {
                secret.push(char::from(b));
                write!(err, "*")?;
            }
        }
        err.flush()?;
    }
    writeln!(err)?;
    Ok(Some(secret))
}
