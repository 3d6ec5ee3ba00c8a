//! `scratch-fill`: grows `/scratch` through `wasi:filesystem` itself, one way
//! at a time, to show each way is held to the quota while the call runs.
//!
//! It stops at the first refusal and keeps what stopped it, and how far it
//! got, under the kv key `scratch-refused`: the call itself then fails on
//! its quota, which hides the plugin's own error.

use outpost_sdk::kv;
use outpost_sdk::types::PluginError;
use wasip2::filesystem::preopens::get_directories;
use wasip2::filesystem::types::{
    Descriptor, DescriptorFlags, ErrorCode, OpenFlags, PathFlags, filesystem_error_code,
};
use wasip2::io::streams::{OutputStream, StreamError};

/// Folder names in `deep`: 25 levels of these make a path past 4096 bytes.
const DEEP_NAME_BYTES: usize = 200;
const DEEP_LEVELS: usize = 25;

fn code(error: ErrorCode) -> String {
    error.name().to_string()
}

fn stream_code(error: StreamError) -> String {
    match error {
        StreamError::LastOperationFailed(error) => match filesystem_error_code(&error) {
            Some(code) => code.name().to_string(),
            None => error.to_debug_string(),
        },
        StreamError::Closed => "stream closed".into(),
    }
}

fn scratch() -> Result<Descriptor, PluginError> {
    get_directories()
        .into_iter()
        .find(|(_, path)| path == "/scratch")
        .map(|(dir, _)| dir)
        .ok_or_else(|| PluginError::denied("no /scratch folder"))
}

fn create(dir: &Descriptor, name: &str) -> Result<Descriptor, String> {
    dir.open_at(
        PathFlags::empty(),
        name,
        OpenFlags::CREATE,
        DescriptorFlags::READ | DescriptorFlags::WRITE,
    )
    .map_err(code)
}

/// How much to write next.
fn step(done: u64, total: u64, chunk: u64) -> usize {
    chunk.min(total - done) as usize
}

/// Writes through `stream` with the blocking call, `chunk` bytes at a time.
fn blocking(stream: &OutputStream, done: &mut u64, total: u64, chunk: u64) -> Result<(), String> {
    while *done < total {
        let n = step(*done, total, chunk);
        stream
            .blocking_write_and_flush(&vec![b's'; n])
            .map_err(stream_code)?;
        *done += n as u64;
    }
    Ok(())
}

/// Writes through `stream` the non-blocking way: wait, ask how much may be
/// written, write it (in the background, on the host's side).
fn nonblocking(
    stream: &OutputStream,
    done: &mut u64,
    total: u64,
    chunk: u64,
) -> Result<(), String> {
    while *done < total {
        stream.subscribe().block();
        let permit = stream.check_write().map_err(stream_code)?;
        let n = step(*done, total, chunk).min(permit as usize);
        if n == 0 {
            continue;
        }
        stream.write(&vec![b'n'; n]).map_err(stream_code)?;
        *done += n as u64;
    }
    stream.flush().map_err(stream_code)?;
    stream.subscribe().block();
    stream.check_write().map_err(stream_code)?;
    Ok(())
}

fn grow(how: &str, done: &mut u64, total: u64, chunk: u64) -> Result<(), String> {
    let dir = scratch().map_err(|e| e.to_string())?;
    match how {
        "write" => {
            let file = create(&dir, "data")?;
            while *done < total {
                let n = step(*done, total, chunk);
                file.write(&vec![b'w'; n], *done).map_err(code)?;
                *done += n as u64;
            }
            Ok(())
        }
        // Writes to a file whose name is already gone: its blocks stay on
        // disk until it is closed, though no walk of the folder finds them.
        "unlinked" => {
            let file = create(&dir, "data")?;
            dir.unlink_file_at("data").map_err(code)?;
            while *done < total {
                let n = step(*done, total, chunk);
                file.write(&vec![b'u'; n], *done).map_err(code)?;
                *done += n as u64;
            }
            Ok(())
        }
        // A file written and deleted over and over: what was deleted stops
        // counting, so the total may pass the quota.
        "churn" => {
            while *done < total {
                let file = create(&dir, "tmp")?;
                let n = step(*done, total, chunk);
                file.write(&vec![b'c'; n], 0).map_err(code)?;
                drop(file);
                dir.unlink_file_at("tmp").map_err(code)?;
                *done += n as u64;
            }
            Ok(())
        }
        "set-size" => {
            let file = create(&dir, "data")?;
            while *done < total {
                let next = *done + step(*done, total, chunk) as u64;
                file.set_size(next).map_err(code)?;
                *done = next;
            }
            Ok(())
        }
        "stream" => {
            let file = create(&dir, "data")?;
            let stream = file.write_via_stream(0).map_err(code)?;
            nonblocking(&stream, done, total, chunk)
        }
        "blocking-stream" => {
            let file = create(&dir, "data")?;
            let stream = file.write_via_stream(0).map_err(code)?;
            blocking(&stream, done, total, chunk)
        }
        "append" => {
            let file = create(&dir, "data")?;
            let stream = file.append_via_stream().map_err(code)?;
            blocking(&stream, done, total, chunk)
        }
        // `total` empty files, or folders; `done` counts them.
        "files" => {
            while *done < total {
                create(&dir, &format!("f{done}"))?;
                *done += 1;
            }
            Ok(())
        }
        "dirs" => {
            while *done < total {
                dir.create_directory_at(&format!("d{done}")).map_err(code)?;
                *done += 1;
            }
            Ok(())
        }
        // Folders inside folders until the path is past 4096 bytes, then
        // the bytes in a file at the bottom.
        "deep" => {
            let name = "d".repeat(DEEP_NAME_BYTES);
            let mut here = dir;
            for _ in 0..DEEP_LEVELS {
                here.create_directory_at(&name).map_err(code)?;
                here = here
                    .open_at(
                        PathFlags::empty(),
                        &name,
                        OpenFlags::DIRECTORY,
                        DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY,
                    )
                    .map_err(code)?;
            }
            let file = create(&here, "data")?;
            let stream = file.write_via_stream(0).map_err(code)?;
            blocking(&stream, done, total, chunk)
        }
        other => Err(format!("unknown way to grow /scratch: {other}")),
    }
}

/// `scratch-fill HOW TOTAL CHUNK`.
pub fn fill(how: &str, total: u64, chunk: u64) -> Result<Vec<u8>, PluginError> {
    let mut done = 0;
    match grow(how, &mut done, total, chunk.max(1)) {
        Ok(()) => Ok(format!("grew by {done}").into_bytes()),
        Err(why) => {
            kv::set("scratch-refused", format!("{why} after {done}").as_bytes())?;
            Err(PluginError::denied(format!("{why} after {done}")))
        }
    }
}
