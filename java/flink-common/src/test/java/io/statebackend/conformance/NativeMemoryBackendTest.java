package io.statebackend.conformance;

import io.statebackend.NativeMemoryBackend;
import java.util.List;
import org.apache.flink.runtime.state.AbstractStateBackend;
import org.apache.flink.runtime.state.ConfigurableStateBackend;
import org.apache.flink.runtime.state.StateBackendTestBase;
import org.apache.flink.testutils.junit.extensions.parameterized.Parameter;
import org.apache.flink.testutils.junit.extensions.parameterized.ParameterizedTestExtension;
import org.apache.flink.testutils.junit.extensions.parameterized.Parameters;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Flink's own state backend conformance suite ({@link StateBackendTestBase}, from flink-runtime's
 * test-jar) against {@link NativeMemoryBackend}: snapshots go to the JobManager (the backend is its
 * own checkpoint storage). Suite switches and their reasons: docs/flink.md, "Conformance suite".
 */
@ExtendWith(ParameterizedTestExtension.class)
public class NativeMemoryBackendTest extends StateBackendTestBase<AbstractStateBackend> {

    @Parameters(name = "storage = {0}")
    public static List<Object[]> modes() {
        return List.<Object[]>of(new Object[] {"jobmanager"});
    }

    @Parameter public String storage;

    @Override
    protected ConfigurableStateBackend getStateBackend() {
        return new NativeMemoryBackend();
    }

    @Override
    protected boolean isSerializerPresenceRequiredOnRestore() {
        return false;
    }

    @Override
    protected boolean supportsAsynchronousSnapshots() {
        return true;
    }

    /** Reads deserialize fresh objects and writes serialize: reuse is safe (as for RocksDB). */
    @Override
    protected boolean isSafeToReuseKVState() {
        return true;
    }
}
