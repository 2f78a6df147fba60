package io.statebackend.conformance;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.List;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.core.fs.CloseableRegistry;
import org.apache.flink.runtime.execution.Environment;
import org.apache.flink.runtime.state.AbstractStateBackend;
import org.apache.flink.runtime.state.AsyncKeyedStateBackend;
import org.apache.flink.runtime.state.ConfigurableStateBackend;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.KeyedStateBackendParametersImpl;
import org.apache.flink.runtime.state.KeyedStateHandle;
import org.apache.flink.runtime.state.StateBackend;
import org.apache.flink.runtime.state.ttl.TtlTimeProvider;
import org.apache.flink.runtime.state.v2.StateBackendTestV2Base;
import org.apache.flink.testutils.junit.extensions.parameterized.Parameter;
import org.apache.flink.testutils.junit.extensions.parameterized.ParameterizedTestExtension;
import org.apache.flink.testutils.junit.extensions.parameterized.Parameters;
import org.apache.flink.util.IOUtils;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Flink 2.3's State V2 conformance suite ({@link StateBackendTestV2Base}, from flink-runtime's
 * test-jar, unchanged) against the three native backends' asynchronous keyed backend ({@code
 * NativeAsyncKeyedStateBackend}), RocksDB with full and with incremental checkpoints: snapshot and
 * restore through V2 state, rescaling up and down, timers' priority queues and TTL.
 */
@ExtendWith(ParameterizedTestExtension.class)
public class NativeBackendsV2Test extends StateBackendTestV2Base<AbstractStateBackend> {
    @TempDir private static Path tempFolder;

    @Parameters(name = "backend = {0}")
    public static List<Object[]> backends() {
        return NativeBackendMigrationTest.backends();
    }

    /** The max parallelism of the suite's rescaling tests (2 to 5 and 4 to 3 subtasks). */
    private static final int RESCALING_MAX_PARALLELISM = 10;

    @Parameter public String backend;

    /** One checkpoint directory per test: every backend the test creates writes there. */
    private String checkpointUri;

    @Override
    protected ConfigurableStateBackend getStateBackend() throws Exception {
        if (checkpointUri == null) {
            checkpointUri = Files.createTempDirectory(tempFolder, "checkpoints").toUri().toString();
        }
        return NativeBackendMigrationTest.backend(backend, checkpointUri);
    }

    /**
     * The suite's parameters, with the job's max parallelism. Flink's suite passes the number of
     * key groups in the subtask's range as the max parallelism (5 for key groups 5-9), and at
     * parallelism 1 a range of two key groups while it writes keys of all 128: a keyed backend may
     * rely on neither (ours refuses a range beyond the max parallelism and keys outside its range).
     * So a subtask here owns the key groups the suite's own controller assigns: at parallelism 1
     * all 128 of the suite's job max parallelism, when rescaling the range it asked for out of the
     * suite's max parallelism of 10.
     */
    private <K> StateBackend.KeyedStateBackendParameters<K> parameters(
            int subtaskIndex,
            int parallelism,
            TypeSerializer<K> keySerializer,
            KeyGroupRange keyGroupRange,
            List<KeyedStateHandle> restored,
            Environment env) {
        int maxParallelism = parallelism == 1 ? 128 : RESCALING_MAX_PARALLELISM;
        KeyGroupRange range =
                parallelism == 1 ? KeyGroupRange.of(0, maxParallelism - 1) : keyGroupRange;
        return new KeyedStateBackendParametersImpl<>(
                env,
                jobID,
                String.format("test_op_%d_%d", subtaskIndex, parallelism),
                keySerializer,
                maxParallelism,
                range,
                env.getTaskKvStateRegistry(),
                TtlTimeProvider.DEFAULT,
                getMetricGroup(),
                getCustomInitializationMetrics(),
                restored,
                new CloseableRegistry(),
                1.0d);
    }

    @Override
    protected <K> AsyncKeyedStateBackend<K> createAsyncKeyedBackend(
            int subtaskIndex,
            int parallelism,
            TypeSerializer<K> keySerializer,
            KeyGroupRange keyGroupRange,
            Environment env)
            throws Exception {
        env.setCheckpointStorageAccess(getCheckpointStorageAccess());
        return getStateBackend()
                .createAsyncKeyedStateBackend(
                        parameters(
                                subtaskIndex,
                                parallelism,
                                keySerializer,
                                keyGroupRange,
                                Collections.emptyList(),
                                env));
    }

    @Override
    protected <K> AsyncKeyedStateBackend<K> restoreAsyncKeyedBackend(
            int subtaskIndex,
            int parallelism,
            TypeSerializer<K> keySerializer,
            KeyGroupRange keyGroupRange,
            List<KeyedStateHandle> state,
            Environment env)
            throws Exception {
        return getStateBackend()
                .createAsyncKeyedStateBackend(
                        parameters(
                                subtaskIndex,
                                parallelism,
                                keySerializer,
                                keyGroupRange,
                                state,
                                env));
    }

    /** Restores as a new job would after a restart: a new job id and task environment. */
    @Override
    protected void restoreJob() throws Exception {
        IOUtils.closeQuietly(env);
        jobID = new JobID();
        env = buildMockEnv();
    }
}
