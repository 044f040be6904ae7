//! `POST /v1/files/upload` (§3.12): multipart parsing, Dify's checks in order, size limits, 201 body.

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request};
use axum::response::Response;
use bytes::Bytes;
use serde_json::json;

use crate::UploadRecord;
use crate::json::{ApiError, restx};
use crate::routes::Req;
use crate::state::{AppEntry, DEFAULT_USER, Shared, new_uuid, unix_now};
use crate::validate::{mimetype, user_from_value};

/// A multipart part with a `filename` (werkzeug puts those in `request.files`).
pub(crate) struct FilePart {
    pub name: String,
    pub filename: String,
    /// Declared media type without parameters, lower-cased ("" when the part has none).
    pub mimetype: String,
    pub data: Bytes,
}

#[derive(Default)]
pub(crate) struct Form {
    pub files: Vec<FilePart>,
    pub texts: Vec<(String, String)>,
}

impl Form {
    /// werkzeug `request.form.get(name)`.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.texts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a `multipart/form-data` body; other content types give an empty form (like werkzeug).
pub(crate) async fn parse_form(req: &Req) -> Result<Form, ApiError> {
    if mimetype(req.headers()) != "multipart/form-data" {
        return Ok(Form::default());
    }
    let request = Request::from_parts(req.parts.clone(), Body::from(req.body.clone()));
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|_| ApiError::bad_request())?;
    let mut form = Form::default();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|_| ApiError::bad_request())?
    {
        let name = field.name().unwrap_or_default().to_string();
        let filename = field.file_name().map(str::to_string);
        let mimetype = field
            .content_type()
            .map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
            .unwrap_or_default();
        let data = field.bytes().await.map_err(|_| ApiError::bad_request())?;
        match filename {
            Some(filename) => form.files.push(FilePart {
                name,
                filename,
                mimetype,
                data,
            }),
            None => form
                .texts
                .push((name, String::from_utf8_lossy(&data).into_owned())),
        }
    }
    Ok(form)
}

pub(crate) async fn upload(shared: &Shared, app: &AppEntry, req: &Req) -> Result<Response, ApiError> {
    let form = parse_form(req).await?;
    let user_value = form
        .text("user")
        .map(|u| serde_json::Value::String(u.to_string()));
    let user = user_from_value(user_value.as_ref(), false)?.unwrap_or_else(|| DEFAULT_USER.into());
    let end_user_id = shared.end_user_id(&app.key, &user);
    let file = check_file(&form)?;
    let (name, extension) = check_name(&file.filename)?;
    check_size(&extension, file.data.len())?;
    let id = new_uuid();
    let created_at = unix_now();
    let body = json!({
        "id": id,
        "name": name,
        "size": file.data.len(),
        "extension": extension,
        "mime_type": file.mimetype,
        "created_by": end_user_id,
        "created_at": created_at,
        "preview_url": null,
        "source_url": crate::previews::signed_url(shared, &id, false),
        "original_url": null,
        "user_id": null,
        "tenant_id": shared.tenant_id,
        "conversation_id": null,
        "file_key": null,
    });
    let stored = crate::previews::StoredFile {
        name: name.clone(),
        extension: extension.clone(),
        mime_type: file.mimetype.clone(),
        data: file.data.clone(),
    };
    shared.db.lock().files.insert(id.clone(), stored);
    shared.db.lock().uploads.push(UploadRecord {
        file_id: id,
        key: app.key.clone(),
        user,
        name,
        size: file.data.len(),
        mime_type: file.mimetype.clone(),
    });
    Ok(restx(201, &body))
}

/// The part checks of the upload controller, in its order.
fn check_file(form: &Form) -> Result<&FilePart, ApiError> {
    let Some(file) = form.files.iter().find(|f| f.name == "file") else {
        return Err(ApiError::dify(
            400,
            "no_file_uploaded",
            "Please upload your file.",
        ));
    };
    let mut names: Vec<&str> = form.files.iter().map(|f| f.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if names.len() > 1 {
        return Err(ApiError::dify(400, "too_many_files", "Only one file is allowed."));
    }
    if file.mimetype.is_empty() {
        return Err(ApiError::dify(
            415,
            "unsupported_file_type",
            "File type not allowed.",
        ));
    }
    if file.filename.is_empty() {
        return Err(ApiError::dify(
            400,
            "filename_not_exists_error",
            "The specified filename does not exist.",
        ));
    }
    Ok(file)
}

/// Extension (no dot, lower-case, `os.path.splitext` rules) and the stored name (truncated past 200 chars).
fn check_name(filename: &str) -> Result<(String, String), ApiError> {
    if filename.contains('/') || filename.contains('\\') {
        return Err(ApiError::invalid_param("Filename contains invalid characters"));
    }
    let stem_start = filename.len() - filename.trim_start_matches('.').len();
    let extension = filename[stem_start..]
        .rfind('.')
        .map(|i| filename[stem_start + i + 1..].to_lowercase())
        .unwrap_or_default();
    let name = if filename.chars().count() > 200 {
        let head: String = filename
            .split('.')
            .next()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect();
        format!("{head}.{extension}")
    } else {
        filename.to_string()
    };
    Ok((name, extension))
}

const MB: usize = 1024 * 1024;

/// Size limit by extension class (UPLOAD_*_FILE_SIZE_LIMIT defaults).
fn size_limit(extension: &str) -> usize {
    match extension {
        "jpg" | "jpeg" | "png" | "webp" | "gif" | "svg" => 10 * MB,
        "mp4" | "mov" | "mpeg" | "webm" => 100 * MB,
        "mp3" | "m4a" | "wav" | "amr" | "mpga" => 50 * MB,
        _ => 15 * MB,
    }
}

fn check_size(extension: &str, size: usize) -> Result<(), ApiError> {
    if size > size_limit(extension) {
        // 1.14.1 never fills the placeholder.
        return Err(ApiError::dify(
            413,
            "file_too_large",
            "File size exceeded. {message}",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_like_splitext() {
        assert_eq!(check_name("photo.PNG").ok().map(|x| x.1), Some("png".into()));
        assert_eq!(check_name(".bashrc").ok().map(|x| x.1), Some(String::new()));
        assert_eq!(check_name("a.tar.gz").ok().map(|x| x.1), Some("gz".into()));
        assert!(check_name("a/b.png").is_err());
    }
}
