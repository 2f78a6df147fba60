package io.statebackend.conformance;

import io.statebackend.NativeMemoryBackend;
import org.apache.flink.runtime.state.StateBackend;
import org.apache.flink.runtime.state.ttl.StateBackendTestContext;
import org.apache.flink.runtime.state.ttl.TtlStateTestBase;
import org.apache.flink.runtime.state.ttl.TtlTimeProvider;

/**
 * Flink's own state TTL suite ({@link TtlStateTestBase}, from flink-runtime's test-jar) against
 * {@link NativeMemoryBackend}: every state kind wrapped by Flink's TTL layer, expiration on read
 * and write, both visibilities, namespace merging, snapshot cleanup, restore. Suite switches and
 * their reasons: docs/flink.md, "State TTL".
 */
public class NativeMemoryTtlStateTest extends TtlStateTestBase {
    @Override
    protected StateBackendTestContext createStateBackendTestContext(TtlTimeProvider timeProvider) {
        return new StateBackendTestContext(timeProvider) {
            @Override
            protected StateBackend createStateBackend() {
                return new NativeMemoryBackend();
            }
        };
    }
}
