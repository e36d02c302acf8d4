//! Reading the shell's lines and showing notes from the background.
//!
//! On a terminal, rustyline edits the line, keeps a history (saved in the profile's folder) and
//! prints notes above the prompt as they come. With piped input, rustyline reads plain lines, no
//! prompt is shown, and notes are queued and printed before the next line is read, so that a
//! script's output keeps its order.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::ThreadId;

use anyhow::Result;
use rustyline::error::ReadlineError;
use rustyline::{Config, DefaultEditor, ExternalPrinter};

/// The history file, in the profile's folder.
const HISTORY_FILE: &str = ".bt-shell-history";
/// Lines of history kept.
const HISTORY_SIZE: usize = 1000;

/// Where lines come from.
pub struct Input {
    editor: DefaultEditor,
    /// The history file (terminal only).
    history: Option<PathBuf>,
    notes: Notes,
}

impl Input {
    /// Read from stdin; on a terminal, load the history of the profile whose folder is given.
    pub fn new(folder: PathBuf) -> Result<Input> {
        let config = Config::builder()
            .auto_add_history(true)
            .max_history_size(HISTORY_SIZE)?
            .build();
        let mut editor = DefaultEditor::with_config(config)?;
        // A printer exists only when both ends are a terminal.
        let (sink, history) = match editor.create_external_printer() {
            Ok(p) => (Sink::Printer(Box::new(p)), Some(folder.join(HISTORY_FILE))),
            Err(_) => (Sink::Queue(Vec::new()), None),
        };
        if let Some(h) = &history {
            // A first session has no history yet.
            let _ = editor.load_history(h);
        }
        let notes = Notes(Arc::new(Mutex::new(sink)));
        if history.is_some() {
            // On a terminal, log lines too go above the prompt rather than through it.
            let _ = LOG_NOTES.set((std::thread::current().id(), notes.clone()));
        }
        Ok(Input {
            editor,
            history,
            notes,
        })
    }

    /// Where background work reports.
    pub fn notes(&self) -> Notes {
        self.notes.clone()
    }

    /// The next line, or `None` at the end of input (Ctrl-D). Ctrl-C clears the line.
    pub fn read(&mut self, prompt: &str) -> Result<Option<String>> {
        self.notes.flush();
        loop {
            match self.editor.readline(prompt) {
                Ok(line) => return Ok(Some(line)),
                Err(ReadlineError::Interrupted) => continue,
                Err(ReadlineError::Eof) => return Ok(None),
                // The bad line is consumed; the next one may be fine.
                Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                    eprintln!("error: that line is not UTF-8 text");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Save the history (terminal only; a folder that cannot take it is no error).
    pub fn save_history(&mut self) {
        if let Some(h) = &self.history {
            if h.parent().is_some_and(|p| p.is_dir()) {
                if let Err(e) = self.editor.save_history(h) {
                    log::warn!("cannot save the history in {}: {e}", h.display());
                }
            }
        }
    }
}

/// One-line notes from the background: completions and errors.
#[derive(Clone)]
pub struct Notes(Arc<Mutex<Sink>>);

enum Sink {
    /// Printed above the prompt at once.
    Printer(Box<dyn ExternalPrinter + Send>),
    /// Printed before the next line is read.
    Queue(Vec<String>),
}

impl Notes {
    /// Report `text` (one line).
    pub fn note(&self, text: String) {
        let mut sink = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *sink {
            Sink::Printer(p) => {
                if p.print(format!("{text}\n")).is_err() {
                    println!("{text}");
                }
            }
            Sink::Queue(q) => q.push(text),
        }
    }

    /// Print what is queued.
    pub fn flush(&self) {
        let mut sink = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Sink::Queue(q) = &mut *sink {
            for text in q.drain(..) {
                println!("{text}");
            }
        }
    }
}

/// Where [`LogWriter`] sends the lines of other threads than the prompt's (given first) once a
/// terminal prompt is up.
static LOG_NOTES: OnceLock<(ThreadId, Notes)> = OnceLock::new();

/// The shell's log target: records of background work as notes above the prompt on a terminal;
/// plain stderr otherwise, before the prompt exists, and for the prompt's own thread (which
/// must never wait on the printer it drains itself).
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match LOG_NOTES.get() {
            Some((prompt, notes)) if *prompt != std::thread::current().id() => {
                let text = String::from_utf8_lossy(buf);
                notes.note(text.trim_end_matches('\n').to_string());
                Ok(buf.len())
            }
            _ => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
