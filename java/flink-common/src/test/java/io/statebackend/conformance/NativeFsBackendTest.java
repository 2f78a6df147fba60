package io.statebackend.conformance;

import io.statebackend.NativeFsBackend;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.apache.flink.runtime.state.AbstractStateBackend;
import org.apache.flink.runtime.state.ConfigurableStateBackend;
import org.apache.flink.runtime.state.StateBackendTestBase;
import org.apache.flink.testutils.junit.extensions.parameterized.Parameter;
import org.apache.flink.testutils.junit.extensions.parameterized.ParameterizedTestExtension;
import org.apache.flink.testutils.junit.extensions.parameterized.Parameters;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Flink's own state backend conformance suite ({@link StateBackendTestBase}, from flink-runtime's
 * test-jar) against {@link NativeFsBackend}: snapshots go to a {@code file://} checkpoint directory
 * (the backend is its own checkpoint storage). Suite switches and their reasons: docs/flink.md,
 * "Conformance suite".
 */
@ExtendWith(ParameterizedTestExtension.class)
public class NativeFsBackendTest extends StateBackendTestBase<AbstractStateBackend> {
    @TempDir private static Path tempFolder;

    @Parameters(name = "storage = {0}")
    public static List<Object[]> modes() {
        return List.<Object[]>of(new Object[] {"file"});
    }

    @Parameter public String storage;

    /** One checkpoint directory per test: every backend the test creates writes there. */
    private String checkpointUri;

    @Override
    protected ConfigurableStateBackend getStateBackend() throws Exception {
        if (checkpointUri == null) {
            checkpointUri = Files.createTempDirectory(tempFolder, "checkpoints").toUri().toString();
        }
        return new NativeFsBackend(checkpointUri);
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
