package io.statebackend.conformance;

import io.statebackend.NativeRocksDBBackend;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.flink.runtime.state.StateBackend;
import org.apache.flink.runtime.state.ttl.StateBackendTestContext;
import org.apache.flink.runtime.state.ttl.TtlStateTestBase;
import org.apache.flink.runtime.state.ttl.TtlTimeProvider;
import org.junit.jupiter.api.io.TempDir;

/**
 * Flink's own state TTL suite ({@link TtlStateTestBase}, from flink-runtime's test-jar) against
 * {@link NativeRocksDBBackend}: every state kind wrapped by Flink's TTL layer, expiration on read
 * and write, both visibilities, namespace merging, snapshot cleanup, restore. Suite switches and
 * their reasons: docs/flink.md, "State TTL".
 */
public class NativeRocksDBTtlStateTest extends TtlStateTestBase {
    @TempDir private static Path tempFolder;

    @Override
    protected StateBackendTestContext createStateBackendTestContext(TtlTimeProvider timeProvider) {
        return new StateBackendTestContext(timeProvider) {
            @Override
            protected StateBackend createStateBackend() {
                return new NativeRocksDBBackend(checkpointUri());
            }
        };
    }

    private static String checkpointUri() {
        try {
            return Files.createTempDirectory(tempFolder, "checkpoints").toUri().toString();
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }
}
