package io.statebackend.conformance;

import io.statebackend.AbstractNativeBackend;
import io.statebackend.NativeFsBackend;
import io.statebackend.NativeMemoryBackend;
import io.statebackend.NativeRocksDBBackend;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.apache.flink.runtime.state.CheckpointStorage;
import org.apache.flink.runtime.state.StateBackendMigrationTestBase;
import org.apache.flink.testutils.junit.extensions.parameterized.Parameter;
import org.apache.flink.testutils.junit.extensions.parameterized.ParameterizedTestExtension;
import org.apache.flink.testutils.junit.extensions.parameterized.Parameters;
import org.junit.jupiter.api.extension.ConditionEvaluationResult;
import org.junit.jupiter.api.extension.ExecutionCondition;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.io.TempDir;

/**
 * Flink's own state migration suite ({@link StateBackendMigrationTestBase}, from flink-runtime's
 * test-jar, unchanged) against the three native backends, RocksDB with full and with incremental
 * checkpoints: values, lists and maps migrated after a serializer became compatible only after
 * migration, reconfigured serializers used, incompatible ones refused, key and namespace
 * serializers checked as Flink's backends check them, and TTL switched on or off across a restore.
 * Each backend is its own checkpoint storage, as in a job.
 */
@ExtendWith({ParameterizedTestExtension.class, NativeBackendMigrationTest.Skips.class})
public class NativeBackendMigrationTest
        extends StateBackendMigrationTestBase<AbstractNativeBackend> {
    @TempDir private static Path checkpointRoot;

    @Parameters(name = "backend = {0}")
    public static List<Object[]> backends() {
        return List.<Object[]>of(
                new Object[] {"memory"},
                new Object[] {"fs"},
                new Object[] {"rocksdb-full"},
                new Object[] {"rocksdb-incremental"});
    }

    @Parameter public String backend;

    /** The backend of the name {@link #backends()} gives, checkpointing to {@code uri}. */
    static AbstractNativeBackend backend(String name, String uri) {
        switch (name) {
            case "memory":
                return new NativeMemoryBackend();
            case "fs":
                return new NativeFsBackend(uri);
            case "rocksdb-full":
                return new NativeRocksDBBackend(uri, false);
            case "rocksdb-incremental":
                return new NativeRocksDBBackend(uri, true);
            default:
                throw new IllegalArgumentException(name);
        }
    }

    /** The suite's tests that do not apply to the native backends, and why (docs/flink.md). */
    static final Map<String, String> SKIPPED =
            Map.of(
                    "testPriorityQueueStateCreationFailsIfNewSerializerIsNotCompatible",
                    "the Memory and Fs backends keep timers in Flink's heap priority queues,"
                            + " written by Flink into raw keyed state, not into the backend's"
                            + " snapshot, so a restored backend knows no queue whose serializer"
                            + " it could check; Flink's timer service checks the timers' key and"
                            + " namespace serializers when it restores them (the RocksDB backend,"
                            + " with native timers, runs it)");

    /** Skips the tests in {@link #SKIPPED}, with their reason. */
    public static final class Skips implements ExecutionCondition {
        @Override
        public ConditionEvaluationResult evaluateExecutionCondition(ExtensionContext context) {
            String reason = context.getTestMethod().map(m -> SKIPPED.get(m.getName())).orElse(null);
            // Decided per invocation: its display name carries the backend parameter.
            String invocation = context.getDisplayName();
            boolean heapTimers =
                    invocation.contains("backend = memory") || invocation.contains("backend = fs");
            return reason == null || !heapTimers
                    ? ConditionEvaluationResult.enabled("in the suite")
                    : ConditionEvaluationResult.disabled(reason);
        }
    }

    /** One backend per test: every keyed backend the test creates writes to its directory. */
    private AbstractNativeBackend stateBackend;

    @Override
    protected AbstractNativeBackend getStateBackend() throws Exception {
        if (stateBackend == null) {
            String uri =
                    Files.createTempDirectory(checkpointRoot, "checkpoints").toUri().toString();
            stateBackend = backend(backend, uri);
        }
        return stateBackend;
    }

    @Override
    protected CheckpointStorage getCheckpointStorage() throws Exception {
        return getStateBackend();
    }
}
