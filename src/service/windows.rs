//! The Windows service, through the service control manager (SCM).
//!
//! `install` registers the service "portshare" (automatic start, LocalSystem)
//! with the image path `"…\portshare.exe" service run --config "…\GLOBAL.INI"`
//! (the file made absolute: a service starts in System32). `run` is what the
//! SCM starts: it loads the settings, logs to `log_dir\service.log`, runs the
//! server like `serve` and turns the SCM's Stop (and system Shutdown) into the
//! server's graceful shutdown, reporting StopPending for `shutdown_grace`.

use std::error::Error;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use portshare::cli::ServiceAction;
use portshare::config::Settings;
use portshare::winerror::{
    ERROR_ACCESS_DENIED, ERROR_FAILED_SERVICE_CONTROLLER_CONNECT, ERROR_SERVICE_ALREADY_RUNNING,
    ERROR_SERVICE_NOT_ACTIVE,
};
use windows_service::service::{
    Service, ServiceAccess, ServiceControl, ServiceControlAccept, ServiceErrorControl,
    ServiceExitCode, ServiceInfo, ServiceStartType, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};
use windows_service::{define_windows_service, service_dispatcher};

const NAME: &str = "portshare";
const DISPLAY_NAME: &str = "portshare web server";
/// The service's exit code when its GLOBAL.INI cannot be loaded.
const EXIT_BAD_CONFIG: u32 = 2;
/// The service's exit code when the server fails (e.g. a port is taken).
const EXIT_SERVER_FAILED: u32 = 1;

/// `--config` of `service run`, for the service thread the SCM starts.
static CONFIG: OnceLock<Option<PathBuf>> = OnceLock::new();

pub fn command(config: Option<&Path>, action: ServiceAction) -> ExitCode {
    let result = match action {
        ServiceAction::Install => install(config),
        ServiceAction::Uninstall => uninstall(),
        ServiceAction::Start => start(),
        ServiceAction::Stop => stop(),
        ServiceAction::Run => run(config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("portshare: service {action:?}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The Windows error itself (the crate's Display says only "IO error in winapi call").
fn describe(e: windows_service::Error) -> String {
    match e {
        windows_service::Error::Winapi(io)
            if io.raw_os_error() == Some(ERROR_ACCESS_DENIED as i32) =>
        {
            format!("{io}; run this from an elevated (Administrator) prompt")
        }
        windows_service::Error::Winapi(io) => io.to_string(),
        e => e.to_string(),
    }
}

fn manager(access: ServiceManagerAccess) -> Result<ServiceManager, String> {
    ServiceManager::local_computer(None::<&str>, access).map_err(describe)
}

fn open(access: ServiceAccess) -> Result<Service, String> {
    manager(ServiceManagerAccess::CONNECT)?
        .open_service(NAME, access)
        .map_err(describe)
}

fn install(config: Option<&Path>) -> Result<(), String> {
    let file = portshare::config::locate(config)
        .ok_or("no GLOBAL.INI in the current folder or beside the program; give --config FILE")?;
    let file = std::path::absolute(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    // Refuse what the service would refuse at start.
    Settings::load(Some(&file)).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let info = ServiceInfo {
        name: NAME.into(),
        display_name: DISPLAY_NAME.into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: exe.clone(),
        launch_arguments: vec![
            "service".into(),
            "run".into(),
            "--config".into(),
            file.clone().into_os_string(),
        ],
        dependencies: vec![],
        account_name: None, // LocalSystem
        account_password: None,
    };
    let service = manager(ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE)?
        .create_service(&info, ServiceAccess::CHANGE_CONFIG)
        .map_err(describe)?;
    let _ = service.set_description(
        "Personal HTTP/HTTPS server with HTTP.sys-style port sharing (portshare serve)",
    );
    println!(
        "Installed the service '{NAME}': {} service run --config {}",
        exe.display(),
        file.display()
    );
    println!("It starts at boot; start it now with 'portshare service start'.");
    Ok(())
}

/// Polls until the service reaches `state` (or stops), at most `limit`.
fn wait_for(
    service: &Service,
    state: ServiceState,
    limit: Duration,
) -> Result<ServiceStatus, String> {
    let deadline = Instant::now() + limit;
    loop {
        let status = service.query_status().map_err(describe)?;
        if status.current_state == state
            || status.current_state == ServiceState::Stopped
            || Instant::now() >= deadline
        {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn stop_and_wait(service: &Service) -> Result<(), String> {
    match service.stop() {
        Ok(_) => {}
        Err(windows_service::Error::Winapi(e))
            if e.raw_os_error() == Some(ERROR_SERVICE_NOT_ACTIVE as i32) =>
        {
            println!("The service '{NAME}' is not running.");
            return Ok(());
        }
        Err(e) => return Err(describe(e)),
    }
    let status = wait_for(service, ServiceState::Stopped, Duration::from_secs(60))?;
    if status.current_state != ServiceState::Stopped {
        return Err(format!("still {:?} after 60 s", status.current_state));
    }
    println!("The service '{NAME}' stopped.");
    Ok(())
}

fn uninstall() -> Result<(), String> {
    let service = open(ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE)?;
    if service.query_status().map_err(describe)?.current_state != ServiceState::Stopped {
        stop_and_wait(&service)?;
    }
    service.delete().map_err(describe)?;
    println!("Removed the service '{NAME}'.");
    Ok(())
}

fn start() -> Result<(), String> {
    let service = open(ServiceAccess::QUERY_STATUS | ServiceAccess::START)?;
    match service.start::<&str>(&[]) {
        Ok(()) => {}
        Err(windows_service::Error::Winapi(e))
            if e.raw_os_error() == Some(ERROR_SERVICE_ALREADY_RUNNING as i32) =>
        {
            println!("The service '{NAME}' is already running.");
            return Ok(());
        }
        Err(e) => return Err(describe(e)),
    }
    let status = wait_for(&service, ServiceState::Running, Duration::from_secs(30))?;
    match status.current_state {
        ServiceState::Running => {
            println!("The service '{NAME}' is running.");
            Ok(())
        }
        state => Err(format!(
            "the service is {state:?} (exit code {:?}); see service.log in log_dir, or run 'portshare --config FILE serve' in a console to see the error",
            status.exit_code
        )),
    }
}

fn stop() -> Result<(), String> {
    stop_and_wait(&open(ServiceAccess::QUERY_STATUS | ServiceAccess::STOP)?)
}

/// `service run`: hands the thread to the SCM, which calls [`service_main`].
fn run(config: Option<&Path>) -> Result<(), String> {
    let _ = CONFIG.set(config.map(Path::to_path_buf));
    service_dispatcher::start(NAME, ffi_service_main).map_err(|e| match e {
        windows_service::Error::Winapi(io)
            if io.raw_os_error() == Some(ERROR_FAILED_SERVICE_CONTROLLER_CONNECT as i32) =>
        {
            "only the service control manager starts this; in a console use 'portshare serve'"
                .to_owned()
        }
        e => describe(e),
    })
}

define_windows_service!(ffi_service_main, service_main);

fn service_main(_arguments: Vec<OsString>) {
    if let Err(e) = run_service() {
        tracing::error!("service failed: {e}");
    }
}

fn status(state: ServiceState, exit: u32, wait_hint: Duration) -> ServiceStatus {
    ServiceStatus {
        service_type: ServiceType::OWN_PROCESS,
        current_state: state,
        controls_accepted: if state == ServiceState::Running {
            ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
        } else {
            ServiceControlAccept::empty()
        },
        exit_code: if exit == 0 {
            ServiceExitCode::NO_ERROR
        } else {
            ServiceExitCode::ServiceSpecific(exit)
        },
        checkpoint: 0,
        wait_hint,
        process_id: None,
    }
}

fn run_service() -> Result<(), Box<dyn Error>> {
    let stop = Arc::new(tokio::sync::Notify::new());
    let on_stop = stop.clone();
    let handle = service_control_handler::register(NAME, move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            on_stop.notify_one();
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    })?;
    handle.set_service_status(status(
        ServiceState::StartPending,
        0,
        Duration::from_secs(10),
    ))?;
    let config = CONFIG.get().cloned().flatten();
    let settings = match Settings::load(config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            // No log_dir known yet: the SCM shows the exit code (sc query portshare).
            handle.set_service_status(status(
                ServiceState::Stopped,
                EXIT_BAD_CONFIG,
                Duration::ZERO,
            ))?;
            return Err(e.into());
        }
    };
    init_log(&settings);
    let grace = settings.shutdown_grace + Duration::from_secs(5);
    let result = crate::serve_with(
        settings,
        async move {
            stop.notified().await;
            tracing::info!("service stop requested");
            let _ = handle.set_service_status(status(ServiceState::StopPending, 0, grace));
        },
        || {
            let _ = handle.set_service_status(status(ServiceState::Running, 0, Duration::ZERO));
        },
    );
    let exit = match &result {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e}");
            EXIT_SERVER_FAILED
        }
    };
    handle.set_service_status(status(ServiceState::Stopped, exit, Duration::ZERO))?;
    Ok(())
}

/// Tracing output goes to `log_dir\service.log` (appended); with log_dir
/// empty a service has nowhere to log and logs nothing.
fn init_log(settings: &Settings) {
    let Some(dir) = &settings.log_dir else {
        return;
    };
    let _ = std::fs::create_dir_all(dir);
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("service.log"))
    else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(crate::DEFAULT_LOG_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
}
