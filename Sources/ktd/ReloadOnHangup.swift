import KeukentafelServer
import Logging
import ServiceLifecycle
import UnixSignals

/// SIGHUP reads the TLS certificate and key again (`systemctl reload keukentafel-ktd`), so a renewed
/// certificate is served without a restart. A file that cannot be used is logged and the previous
/// certificate stays. Without TLS a SIGHUP is logged and changes nothing (it no longer ends ktd).
struct ReloadOnHangup: Service {
    let server: SyncServer
    let logger: Logger

    func run() async throws {
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in hangups {
                do {
                    if let certificate = try server.reloadTLS() {
                        logger.notice("TLS certificate reloaded", metadata: ["certificate": "\(certificate)"])
                    } else {
                        logger.notice("SIGHUP: nothing to reload (ktd serves plain HTTP)")
                    }
                } catch {
                    logger.error("TLS certificate not reloaded; still serving the previous one", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}
