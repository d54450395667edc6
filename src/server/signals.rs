//! Waiting for the operating system's request to stop: SIGTERM or Ctrl-C
//! on Unix, Ctrl-C / Ctrl-Break / console close on Windows.

/// Resolves when the process is asked to stop.
pub async fn shutdown_requested() {
    imp::wait().await
}

#[cfg(unix)]
mod imp {
    use tokio::signal::unix::{signal, SignalKind};

    pub async fn wait() {
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C received"),
        }
    }
}

#[cfg(windows)]
mod imp {
    pub async fn wait() {
        use tokio::signal::windows;
        let (Ok(mut brk), Ok(mut close)) = (windows::ctrl_break(), windows::ctrl_close()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C received"),
            _ = brk.recv() => tracing::info!("Ctrl-Break received"),
            _ = close.recv() => tracing::info!("console closed"),
        }
    }
}
