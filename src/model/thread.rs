//! The model on a thread of its own. tch is synchronous and one propagation takes seconds to
//! minutes, so model work never runs on the caller's thread: the CLI keeps its progress bar alive,
//! and the queue worker's tokio runtime (issue #6) stays free for I/O. The model is loaded on the
//! thread and never leaves it; callers send closures and wait for their result.
//!
//! A task that panics (libtorch raising inside a tch call does that) ends the thread: the model's
//! state after an unwound libtorch call is not trusted. The caller of that task gets the panic's
//! message, so it can blame the task that did it; every later call gets `Stopped`, so a service
//! knows it must be restarted instead of failing every job that follows.

use super::Sam;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Runs one caller's closure; returns false when it panicked (the thread then stops).
type Task = Box<dyn FnOnce(&Sam) -> bool + Send>;

pub struct ModelThread {
    tasks: Option<mpsc::Sender<Task>>,
    handle: Option<JoinHandle<()>>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelThreadStopped {
    /// This call's task panicked, with this message; the thread has stopped.
    #[error("the model panicked: {0}")]
    Panicked(String),
    /// The thread had already stopped (an earlier task panicked).
    #[error("the model thread has stopped (an earlier task panicked)")]
    Stopped,
}

impl crate::error::Coded for ModelThreadStopped {
    /// A stable code: MODEL_PANIC for the task that panicked, MODEL_STOPPED for later calls.
    fn code(&self) -> &'static str {
        match self {
            Self::Panicked(_) => "MODEL_PANIC",
            Self::Stopped => "MODEL_STOPPED",
        }
    }
}

/// The text of a panic payload (panic! with a literal or a formatted message; tch's are the
/// latter), without the C++ stack libtorch appends to its errors ("Exception raised from ...").
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    // tch's panic is `...unwrap()` on `Torch("message\nException raised from ...")`: the stack
    // follows an escaped newline there, a real one in a c10 error printed as is.
    match text.find("\\nException raised from").or_else(|| text.find("\nException raised from")) {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

impl ModelThread {
    /// Starts the thread and loads the model on it with `load`; returns load's error if any.
    pub fn spawn<E: Send + 'static>(load: impl FnOnce() -> Result<Sam, E> + Send + 'static) -> Result<Self, E> {
        let (tasks, inbox) = mpsc::channel::<Task>();
        let (loaded_tx, loaded_rx) = mpsc::channel::<Result<(), E>>();
        let handle = std::thread::Builder::new()
            .name("radsam-model".into())
            .spawn(move || {
                let sam = match load() {
                    Ok(sam) => {
                        let _ = loaded_tx.send(Ok(()));
                        sam
                    }
                    Err(e) => {
                        let _ = loaded_tx.send(Err(e));
                        return;
                    }
                };
                for task in inbox {
                    if !task(&sam) {
                        // Dropping the inbox makes every later `run` fail with Stopped.
                        return;
                    }
                }
            })
            .expect("spawn the model thread");
        match loaded_rx.recv() {
            Ok(Ok(())) => Ok(Self { tasks: Some(tasks), handle: Some(handle) }),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(e)
            }
            Err(_) => panic!("the model thread died while loading"),
        }
    }

    /// Runs `f` on the model thread and waits for its result.
    pub fn run<R: Send + 'static>(&self, f: impl FnOnce(&Sam) -> R + Send + 'static) -> Result<R, ModelThreadStopped> {
        let (tx, rx) = mpsc::channel();
        let task: Task = Box::new(move |sam| match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(sam))) {
            Ok(r) => {
                let _ = tx.send(Ok(r));
                true
            }
            Err(payload) => {
                let _ = tx.send(Err(ModelThreadStopped::Panicked(panic_message(payload.as_ref()))));
                false
            }
        });
        self.tasks.as_ref().ok_or(ModelThreadStopped::Stopped)?.send(task).map_err(|_| ModelThreadStopped::Stopped)?;
        rx.recv().map_err(|_| ModelThreadStopped::Stopped)?
    }
}

impl Drop for ModelThread {
    fn drop(&mut self) {
        drop(self.tasks.take()); // ends the thread's loop
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Coded;
    use crate::model::ModelConfig;

    fn tiny() -> Sam {
        let mut config = ModelConfig::by_name("sam_vit_b").unwrap();
        if let crate::model::EncoderConfig::Vit(v) = &mut config.encoder {
            (v.img_size, v.embed_dim, v.depth, v.num_heads, v.window_size, v.global_attn_indexes) =
                (64, 32, 1, 2, 2, vec![]);
        }
        config.image_size = 64;
        Sam::new(config, tch::Device::Cpu)
    }

    #[test]
    fn work_runs_on_the_model_thread_and_errors_come_back() {
        let thread = ModelThread::spawn(|| Ok::<_, String>(tiny())).unwrap();
        let caller = std::thread::current().id();
        let (name, other_thread) =
            thread.run(move |sam| (sam.config.name.clone(), std::thread::current().id() != caller)).unwrap();
        assert_eq!(name, "sam_vit_b");
        assert!(other_thread);
        let embedding_size =
            thread.run(|sam| sam.encode(&tch::Tensor::zeros([1, 3, 64, 64], tch::kind::FLOAT_CPU)).size()).unwrap();
        assert_eq!(embedding_size, vec![1, 256, 4, 4]);
        assert_eq!(ModelThread::spawn(|| Err::<Sam, _>("no weights")).err(), Some("no weights"));
        // A panicking task stops the thread: its caller gets the message, later calls say the
        // thread stopped instead of hanging; nothing runs on a model after a panic.
        let err = thread.run(|_| -> i32 { panic!("task failure {}", 7) }).unwrap_err();
        assert_eq!(err, ModelThreadStopped::Panicked("task failure 7".into()));
        assert_eq!(err.code(), "MODEL_PANIC");
        assert_eq!(thread.run(|_| 1).unwrap_err(), ModelThreadStopped::Stopped);
        assert_eq!(thread.run(|_| 1).unwrap_err().code(), "MODEL_STOPPED");
        // A panic inside libtorch (what a 1-pixel-wide slice did to the resize) is reported the same way.
        let thread = ModelThread::spawn(|| Ok::<_, String>(tiny())).unwrap();
        let err = thread
            .run(|_| {
                tch::Tensor::zeros([1, 3, 1, 8], tch::kind::FLOAT_CPU)
                    .upsample_bilinear2d([0, 64], false, None, None)
                    .size()
            })
            .unwrap_err();
        let ModelThreadStopped::Panicked(message) = &err else { panic!("{err:?}") };
        assert!(
            message.contains("Input and output sizes should be greater than 0") && !message.contains("frame #0"),
            "libtorch's message, without its C++ stack: {message}"
        );
        assert_eq!(thread.run(|_| 1).unwrap_err(), ModelThreadStopped::Stopped);
    }
}
