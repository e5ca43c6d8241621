//! The model on a thread of its own. tch is synchronous and one propagation takes seconds to
//! minutes, so model work never runs on the caller's thread: the CLI keeps its progress bar alive,
//! and the queue worker's tokio runtime (issue #6) stays free for I/O. The model is loaded on the
//! thread and never leaves it; callers send closures and wait for their result.

use super::Sam;
use std::sync::mpsc;
use std::thread::JoinHandle;

type Task = Box<dyn FnOnce(&Sam) + Send>;

pub struct ModelThread {
    tasks: Option<mpsc::Sender<Task>>,
    handle: Option<JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the model thread has stopped (a task panicked or loading failed)")]
pub struct ModelThreadStopped;

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
                    task(&sam);
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
        let task: Task = Box::new(move |sam| {
            let _ = tx.send(f(sam));
        });
        self.tasks.as_ref().ok_or(ModelThreadStopped)?.send(task).map_err(|_| ModelThreadStopped)?;
        rx.recv().map_err(|_| ModelThreadStopped)
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
    use crate::model::ModelConfig;

    fn tiny() -> Sam {
        let mut config = ModelConfig::by_name("sam_vit_b").unwrap();
        if let crate::model::EncoderConfig::Vit(v) = &mut config.encoder {
            (v.img_size, v.embed_dim, v.depth, v.num_heads, v.window_size, v.global_attn_indexes) = (64, 32, 1, 2, 2, vec![]);
        }
        config.image_size = 64;
        Sam::new(config, tch::Device::Cpu)
    }

    #[test]
    fn work_runs_on_the_model_thread_and_errors_come_back() {
        let thread = ModelThread::spawn(|| Ok::<_, String>(tiny())).unwrap();
        let caller = std::thread::current().id();
        let (name, other_thread) = thread.run(move |sam| (sam.config.name.clone(), std::thread::current().id() != caller)).unwrap();
        assert_eq!(name, "sam_vit_b");
        assert!(other_thread);
        let embedding_size = thread.run(|sam| sam.encode(&tch::Tensor::zeros([1, 3, 64, 64], tch::kind::FLOAT_CPU)).size()).unwrap();
        assert_eq!(embedding_size, vec![1, 256, 4, 4]);
        assert_eq!(ModelThread::spawn(|| Err::<Sam, _>("no weights")).err(), Some("no weights"));
        // A panicking task stops the thread; later calls say so instead of hanging.
        let _ = thread.run(|_| panic!("task failure"));
        assert!(thread.run(|_| 1).is_err());
    }
}
