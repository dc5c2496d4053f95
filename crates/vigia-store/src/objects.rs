//! Object storage: a local directory by default, any S3-compatible service by URL.

use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};

/// A path-safe object key: `/`-separated segments, none empty, `.` or `..`, no control
/// characters or backslashes. Built only through [`ObjectKey::parse`] or [`ObjectKey::join`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey(String);

impl ObjectKey {
    pub fn parse(raw: &str) -> anyhow::Result<Self> {
        if raw.is_empty() || raw.len() > 1024 {
            bail!("object key must be 1 to 1024 bytes long");
        }
        for segment in raw.split('/') {
            if segment.is_empty() || segment == "." || segment == ".." {
                bail!("object key {raw:?} has an empty, '.' or '..' segment");
            }
            if segment.chars().any(|c| c.is_control() || c == '\\') {
                bail!("object key {raw:?} contains a control character or backslash");
            }
        }
        Ok(Self(raw.to_owned()))
    }

    /// Builds a key from segments, each made safe with [`sanitize_segment`].
    pub fn join<I, S>(segments: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let parts: Vec<String> = segments
            .into_iter()
            .map(|s| sanitize_segment(s.as_ref()))
            .collect();
        Self(parts.join("/"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Turns any user-supplied name into one safe key segment: path separators, control characters
/// and characters outside a conservative set become `_`; leading dots are dropped; the result is
/// never empty and at most 200 bytes.
pub fn sanitize_segment(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let mut out: String = base
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') {
                c
            } else {
                '_'
            }
        })
        .collect();
    out = out.trim().trim_start_matches('.').to_owned();
    while out.len() > 200 {
        out.pop();
    }
    if out.is_empty() { "_".to_owned() } else { out }
}

/// One listed object: its key and its version ([`Objects::list_versions`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: ObjectKey,
    pub version: String,
    /// When it was last written, in milliseconds since the epoch.
    pub modified_ms: i64,
}

/// One page of a listing after a cursor ([`Objects::list_page`]).
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub objects: Vec<Listed>,
    /// The store's own name of the last object listed (what the next page starts after), or
    /// `None` when nothing came after the cursor.
    pub last: Option<String>,
    /// Whether the page is full, so more may follow at once.
    pub full: bool,
}

/// The object store, with all keys relative to a configured prefix.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    prefix: Option<Path>,
    description: String,
    /// The directory of a local store: unfinished streamed writes leave staging files there
    /// that the store's own listing does not show.
    local_root: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Objects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

/// Settings for S3-compatible storage beyond what the URL says. Credentials come from the
/// standard `AWS_*` environment variables.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub allow_http: bool,
}

impl Objects {
    /// Opens `url`: a directory path, `file:///abs/path`, or `s3://bucket/optional/prefix`.
    pub fn open(url: &str, s3: &S3Options) -> anyhow::Result<Self> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("storage URL {url:?} names no bucket: use s3://BUCKET/PREFIX");
            }
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            if let Some(endpoint) = &s3.endpoint {
                builder = builder
                    .with_endpoint(endpoint)
                    .with_virtual_hosted_style_request(false);
            }
            if let Some(region) = &s3.region {
                builder = builder.with_region(region);
            }
            if s3.allow_http {
                builder = builder.with_allow_http(true);
            }
            let store = builder
                .build()
                .with_context(|| format!("cannot configure S3 storage {url}"))?;
            let prefix = prefix.trim_matches('/');
            Ok(Self {
                store: Arc::new(store),
                prefix: (!prefix.is_empty()).then(|| Path::from(prefix)),
                description: format!("s3://{bucket}/{prefix}"),
                local_root: None,
            })
        } else {
            let dir = url.strip_prefix("file://").unwrap_or(url);
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create storage directory {dir}"))?;
            let store = LocalFileSystem::new_with_prefix(dir)
                .with_context(|| format!("cannot open storage directory {dir}"))?
                .with_automatic_cleanup(true);
            Ok(Self {
                store: Arc::new(store),
                prefix: None,
                description: format!("file://{dir}"),
                local_root: Some(std::path::PathBuf::from(dir)),
            })
        }
    }

    fn path(&self, key: &ObjectKey) -> Path {
        match &self.prefix {
            // `Path::join` takes one segment and would escape the key's slashes; a key is several.
            Some(prefix) => prefix
                .parts()
                .chain(Path::from(key.as_str()).parts())
                .collect(),
            None => Path::from(key.as_str()),
        }
    }

    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Stores `bytes` under `key`, replacing any object there.
    pub async fn put(&self, key: &ObjectKey, bytes: Bytes) -> anyhow::Result<()> {
        self.store
            .put(&self.path(key), PutPayload::from_bytes(bytes))
            .await
            .with_context(|| format!("cannot store object {key}"))?;
        Ok(())
    }

    /// Starts writing `key` piece by piece (a multipart upload on S3, a staging file locally),
    /// so a large object never has to sit in memory. Nothing is visible under `key` until
    /// [`ObjectWriter::finish`]; [`ObjectWriter::abort`] leaves nothing behind.
    pub async fn writer(&self, key: &ObjectKey) -> anyhow::Result<ObjectWriter> {
        let upload = self
            .store
            .put_multipart(&self.path(key))
            .await
            .with_context(|| format!("cannot start writing object {key}"))?;
        Ok(ObjectWriter {
            key: key.clone(),
            inner: WriteMultipart::new_with_chunk_size(upload, WRITER_PART_BYTES),
        })
    }

    /// The whole object; `Ok(None)` if it does not exist.
    pub async fn get(&self, key: &ObjectKey) -> anyhow::Result<Option<Bytes>> {
        match self.store.get(&self.path(key)).await {
            Ok(result) => Ok(Some(
                result
                    .bytes()
                    .await
                    .with_context(|| format!("cannot read object {key}"))?,
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error).with_context(|| format!("cannot read object {key}")),
        }
    }

    /// The object as a stream of chunks, with its size; `Ok(None)` if it does not exist.
    pub async fn stream(
        &self,
        key: &ObjectKey,
    ) -> anyhow::Result<Option<(u64, BoxStream<'static, Result<Bytes, std::io::Error>>)>> {
        match self.store.get(&self.path(key)).await {
            Ok(result) => {
                let size = result.meta.size;
                let stream = result.into_stream().map_err(std::io::Error::other);
                Ok(Some((size, Box::pin(stream))))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error).with_context(|| format!("cannot read object {key}")),
        }
    }

    /// Deletes the object; deleting a missing object is not an error.
    pub async fn delete(&self, key: &ObjectKey) -> anyhow::Result<()> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error).with_context(|| format!("cannot delete object {key}")),
        }
    }

    /// Deletes everything under `prefix`, including what unfinished streamed writes left (a
    /// local store's staging files; on S3, incomplete multipart uploads are left to the bucket's
    /// lifecycle rule).
    pub async fn delete_under(&self, prefix: &str) -> anyhow::Result<()> {
        for key in self.list(prefix).await? {
            self.delete(&key).await?;
        }
        if let Some(root) = &self.local_root {
            let dir = ObjectKey::parse(prefix.trim_matches('/'))?;
            let path = root.join(dir.as_str());
            match tokio::fs::remove_dir_all(&path).await {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    return Err(error).with_context(|| format!("cannot remove {}", path.display()));
                }
            }
        }
        Ok(())
    }

    /// Keys under `prefix`, relative to the store's own prefix.
    pub async fn list(&self, prefix: &str) -> anyhow::Result<Vec<ObjectKey>> {
        Ok(self
            .list_versions(prefix)
            .await?
            .into_iter()
            .map(|listed| listed.key)
            .collect())
    }

    /// Keys under `prefix` with their version: S3's ETag, a local file's inode, modification
    /// time and size (what `object_store` gives as its ETag); without an ETag, the modification
    /// time and size. A replaced object has another version; the same one listed again, the same.
    pub async fn list_versions(&self, prefix: &str) -> anyhow::Result<Vec<Listed>> {
        let full = self.full_prefix(prefix);
        let metas: Vec<_> = self
            .store
            .list(full.as_ref())
            .try_collect()
            .await
            .context("cannot list objects")?;
        let mut keys: Vec<Listed> = metas.iter().filter_map(|meta| self.listed(meta)).collect();
        keys.sort_by(|a, b| a.key.0.cmp(&b.key.0));
        Ok(keys)
    }

    /// At most `limit` objects under `prefix` whose store name sorts after `after` (a
    /// [`ListPage::last`] of an earlier page; `None`: from the start), in the store's order. On
    /// S3 this is one `ListObjectsV2` request with `start-after` per 1,000 keys; a local
    /// directory has no order of its own, so it is walked whole and sorted (the watcher, not
    /// this, finds files there as they land).
    pub async fn list_page(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> anyhow::Result<ListPage> {
        let full = self.full_prefix(prefix);
        let limit = limit.max(1);
        let mut metas: Vec<object_store::ObjectMeta> = if self.local_root.is_some() {
            let mut all: Vec<object_store::ObjectMeta> = self
                .store
                .list(full.as_ref())
                .try_filter(|m| {
                    futures::future::ready(after.is_none_or(|a| m.location.as_ref() > a))
                })
                .try_collect()
                .await
                .context("cannot list objects")?;
            all.sort_by(|a, b| a.location.cmp(&b.location));
            all.truncate(limit);
            all
        } else {
            let stream = match after {
                Some(after) => {
                    let offset = Path::parse(after)
                        .with_context(|| format!("bad listing cursor {after:?}"))?;
                    self.store.list_with_offset(full.as_ref(), &offset)
                }
                None => self.store.list(full.as_ref()),
            };
            stream
                .take(limit)
                .try_collect()
                .await
                .context("cannot list objects")?
        };
        // S3 already answers in key order; a page is kept in that order either way.
        metas.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(ListPage {
            full: metas.len() >= limit,
            last: metas.last().map(|m| m.location.as_ref().to_owned()),
            objects: metas.iter().filter_map(|meta| self.listed(meta)).collect(),
        })
    }

    /// The store's own name of `prefix` (with the configured prefix): what a listing cursor
    /// of it is kept under, so another storage prefix or bucket starts its own.
    pub fn scope(&self, prefix: &str) -> String {
        let full = self
            .full_prefix(prefix)
            .map(|p| p.to_string())
            .unwrap_or_default();
        format!("{}#{full}", self.description)
    }

    /// The one object's version, as [`Objects::list_versions`] gives it; `None` if it does not
    /// exist.
    pub async fn head(&self, key: &ObjectKey) -> anyhow::Result<Option<Listed>> {
        match self.store.head(&self.path(key)).await {
            Ok(meta) => Ok(self.listed(&meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error).with_context(|| format!("cannot read object {key}")),
        }
    }

    /// The directory of a local store (`None` on S3).
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    /// The key of a file under a local store's directory: its path below the directory, `/`
    /// between segments; `None` outside it or for a name no key has.
    pub fn key_of_local_path(&self, path: &std::path::Path) -> Option<ObjectKey> {
        let relative = path.strip_prefix(self.local_root.as_ref()?).ok()?;
        let segments: Option<Vec<&str>> = relative.iter().map(|s| s.to_str()).collect();
        ObjectKey::parse(&segments?.join("/")).ok()
    }

    /// The file of `key` in a local store (`None` on S3).
    pub fn local_path(&self, key: &ObjectKey) -> Option<std::path::PathBuf> {
        let root = self.local_root.as_ref()?;
        Some(key.as_str().split('/').fold(root.clone(), |p, s| p.join(s)))
    }

    fn full_prefix(&self, prefix: &str) -> Option<Path> {
        match (&self.prefix, prefix.trim_matches('/')) {
            (Some(p), "") => Some(p.clone()),
            (Some(p), rest) => Some(p.parts().chain(Path::from(rest).parts()).collect()),
            (None, "") => None,
            (None, rest) => Some(Path::from(rest)),
        }
    }

    /// A listed object's key (relative to the store's prefix) and version.
    fn listed(&self, meta: &object_store::ObjectMeta) -> Option<Listed> {
        let version = meta
            .e_tag
            .clone()
            .unwrap_or_else(|| format!("{}-{}", meta.last_modified.timestamp_micros(), meta.size));
        // Locations come back percent-encoded (`tubería` → `tuber%C3%ADa`): decode them so a
        // listed key is the key that was stored.
        let location = percent_encoding::percent_decode_str(meta.location.as_ref())
            .decode_utf8()
            .ok()?
            .into_owned();
        let relative = match &self.prefix {
            Some(p) => location.strip_prefix(&format!("{p}/"))?.to_owned(),
            None => location,
        };
        let key = ObjectKey::parse(&relative).ok()?;
        Some(Listed {
            key,
            version,
            modified_ms: meta.last_modified.timestamp_millis(),
        })
    }

    /// Proves the store answers: writes a small probe object and reads it back.
    pub async fn check(&self) -> anyhow::Result<()> {
        let key = ObjectKey::parse(".vigia/ready-probe")
            .unwrap_or_else(|_| ObjectKey::join([".vigia", "probe"]));
        let key = ObjectKey(key.0.trim_start_matches('.').to_owned());
        self.put(&key, Bytes::from_static(b"ok")).await?;
        let back = self.get(&key).await?;
        if back.as_deref() != Some(b"ok".as_slice()) {
            bail!("object storage returned something else than what was written");
        }
        Ok(())
    }
}

/// Parts of a streamed object are this big (S3 requires at least 5 MiB but the last one).
const WRITER_PART_BYTES: usize = 5 * 1024 * 1024;

/// An object being written in parts; see [`Objects::writer`].
pub struct ObjectWriter {
    key: ObjectKey,
    inner: WriteMultipart,
}

impl ObjectWriter {
    /// Appends `bytes`, waiting while too many parts are still in flight (bounded memory).
    pub async fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.inner
            .wait_for_capacity(2)
            .await
            .with_context(|| format!("cannot write object {}", self.key))?;
        self.inner.write(bytes);
        Ok(())
    }

    /// Makes the object visible under its key.
    pub async fn finish(self) -> anyhow::Result<()> {
        self.inner
            .finish()
            .await
            .with_context(|| format!("cannot complete object {}", self.key))?;
        Ok(())
    }

    /// Drops what was written so far.
    pub async fn abort(self) -> anyhow::Result<()> {
        self.inner
            .abort()
            .await
            .with_context(|| format!("cannot abort object {}", self.key))
    }
}

/// An object being written whose size and SHA-256 are counted as it goes: an uploaded file.
pub struct HashedWriter {
    key: ObjectKey,
    writer: ObjectWriter,
    hasher: Sha256,
    size: u64,
}

/// A completed [`HashedWriter`]'s object.
pub struct Written {
    pub key: ObjectKey,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
}

impl HashedWriter {
    /// Opens `key` for writing.
    pub async fn open(objects: &Objects, key: ObjectKey) -> anyhow::Result<Self> {
        let writer = objects.writer(&key).await?;
        Ok(Self {
            key,
            writer,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends `bytes` (see [`ObjectWriter::write`]).
    pub async fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        self.writer.write(bytes).await
    }

    /// Makes the object visible under its key.
    pub async fn finish(self) -> anyhow::Result<Written> {
        self.writer.finish().await?;
        Ok(Written {
            key: self.key,
            size: self.size,
            sha256: hex::encode(self.hasher.finalize()),
        })
    }

    /// Drops what was written so far; a failure is logged (the object store expires
    /// incomplete uploads).
    pub async fn abort(self) {
        if let Err(error) = self.writer.abort().await {
            tracing::warn!(error = format!("{error:#}"), key = %self.key, "cannot abort an upload");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_with_traversal_or_empty_segments_are_refused() {
        for bad in [
            "", "/abs", "a//b", "a/../b", "..", "a/./b", "a\\b", "a\u{0}b",
        ] {
            assert!(ObjectKey::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(ObjectKey::parse("attachments/1/2/foto.jpg").is_ok());
    }

    #[test]
    fn user_supplied_names_become_one_safe_segment() {
        assert_eq!(sanitize_segment("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_segment("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(sanitize_segment(".hidden"), "hidden");
        assert_eq!(
            sanitize_segment("foto tubería (1).jpg"),
            "foto tubería _1_.jpg"
        );
        assert_eq!(sanitize_segment("../"), "_");
        let key = ObjectKey::join(["attachments", "7", "../../x.jpg"]);
        assert_eq!(key.as_str(), "attachments/7/x.jpg");
    }

    #[tokio::test]
    async fn a_local_store_round_trips_lists_and_deletes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let objects = Objects::open(dir.path().to_str().expect("utf-8"), &S3Options::default())
            .expect("open");
        let key = ObjectKey::parse("reports/global/report_2026-11-22_14-00.json").expect("key");
        objects
            .put(&key, Bytes::from_static(b"{}"))
            .await
            .expect("put");
        assert_eq!(
            objects.get(&key).await.expect("get").as_deref(),
            Some(b"{}".as_slice())
        );
        assert_eq!(
            objects.list("reports").await.expect("list"),
            vec![key.clone()]
        );
        objects.delete(&key).await.expect("delete");
        assert_eq!(objects.get(&key).await.expect("get"), None);
        objects.check().await.expect("check");
    }
}
