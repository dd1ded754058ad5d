//! The server's stdio transport: newline-delimited JSON-RPC as the SDK's own, except that each
//! line is sorted here first ([`classify`]), so a request the SDK cannot use gets a useful
//! answer by its id. A good message is parsed once, as the SDK would; what the server sends
//! goes through the SDK's writer unchanged.

use std::future::Future;
use std::pin::Pin;

use rmcp::RoleServer;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::transport::async_rw::{AsyncRwTransport, DEFAULT_MAX_LINE_LENGTH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio_util::bytes::BytesMut;
use tokio_util::codec::{Decoder, LinesCodec, LinesCodecError};

use super::malformed::{Verdict, classify};

type Sending = Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>>;

pub(super) struct Stdio<R, W: AsyncWrite> {
    read: R,
    buf: BytesMut,
    /// Splits lines, dropping one longer than the SDK's limit (no unbounded buffer).
    lines: LinesCodec,
    /// The SDK's transport, used for writing only (it reads nothing).
    write: AsyncRwTransport<RoleServer, tokio::io::Empty, W>,
    /// An answer of ours still being written. `receive` runs inside the service's `select!`
    /// and may be dropped at any await: the write is kept here and finished on the next call,
    /// so no answer is lost or written twice.
    sending: Option<Sending>,
}

impl<R, W> Stdio<R, W>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    pub(super) fn new(read: R, write: W) -> Self {
        Self {
            read,
            buf: BytesMut::with_capacity(8 * 1024),
            lines: LinesCodec::new_with_max_length(DEFAULT_MAX_LINE_LENGTH),
            write: AsyncRwTransport::new(tokio::io::empty(), write),
            sending: None,
        }
    }

    /// The next whole line, or None at the end of input. Cancel-safe: bytes read stay in
    /// `buf` until a line is taken from it.
    async fn next_line(&mut self) -> Option<String> {
        loop {
            match self.lines.decode(&mut self.buf) {
                Ok(Some(line)) => return Some(line),
                Ok(None) => {}
                Err(LinesCodecError::MaxLineLengthExceeded) => {
                    let mib = DEFAULT_MAX_LINE_LENGTH >> 20;
                    crate::output::warn(format!("MCP: dropped a message longer than {mib} MiB"));
                    continue;
                }
                // Not UTF-8: nothing to parse and no id to answer.
                Err(LinesCodecError::Io(_)) => continue,
            }
            match self.read.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    async fn finish_sending(&mut self) {
        if let Some(sending) = self.sending.as_mut() {
            if let Err(e) = sending.await {
                crate::output::warn(format!("MCP: cannot answer the client: {e}"));
            }
            self.sending = None;
        }
    }
}

impl<R, W> Transport<RoleServer> for Stdio<R, W>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.write.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            self.finish_sending().await;
            // A line without its newline at the end of input is not a whole message.
            let line = self.next_line().await?;
            match classify(&line) {
                Verdict::Pass(message) => return Some(*message),
                Verdict::Answer(error) => self.sending = Some(Box::pin(self.write.send(*error))),
                Verdict::Skip(why) => crate::output::detail(format!("MCP: ignored {why}")),
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.finish_sending().await;
        self.write.close().await
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::{JsonRpcMessage, RequestId};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    use super::*;

    fn run(f: impl Future<Output = ()>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(f);
    }

    #[track_caller]
    fn assert_request(message: Option<RxJsonRpcMessage<RoleServer>>, id: i64) {
        match message {
            Some(JsonRpcMessage::Request(r)) => assert_eq!(r.id, RequestId::Number(id)),
            other => panic!("not request {id}: {other:?}"),
        }
    }

    #[test]
    fn a_bad_request_is_answered_here_and_the_next_one_passes() {
        run(async {
            let (mut client, input) = tokio::io::duplex(4096);
            let (output, answers) = tokio::io::duplex(4096);
            let mut t = Stdio::new(input, output);
            let bad = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"status","arguments":"x"}}"#;
            let good = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
            client
                .write_all(format!("{bad}\n\n{good}\r\n").as_bytes())
                .await
                .unwrap();
            drop(client);
            assert_request(t.receive().await, 2);
            let mut line = String::new();
            BufReader::new(answers).read_line(&mut line).await.unwrap();
            let answer: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(
                (&answer["id"], &answer["error"]["code"]),
                (&1.into(), &(-32602).into())
            );
            assert!(t.receive().await.is_none());
        });
    }

    #[test]
    fn an_overlong_line_is_dropped_and_the_next_message_read() {
        run(async {
            let (mut client, input) = tokio::io::duplex(64 * 1024);
            let mut t = Stdio::new(input, tokio::io::sink());
            let writer = async move {
                let long = vec![b'x'; DEFAULT_MAX_LINE_LENGTH + 1];
                client.write_all(&long).await.unwrap();
                let ping = b"\n{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}\n";
                client.write_all(ping).await.unwrap();
            };
            let (_, first) = tokio::join!(writer, t.receive());
            assert_request(first, 3);
            assert!(t.receive().await.is_none());
        });
    }
}
