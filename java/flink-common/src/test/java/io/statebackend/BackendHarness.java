package io.statebackend;

import io.statebackend.internal.NativeKeyedStateBackend;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.RunnableFuture;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.base.IntSerializer;
import org.apache.flink.core.fs.CloseableRegistry;
import org.apache.flink.metrics.groups.UnregisteredMetricsGroup;
import org.apache.flink.runtime.checkpoint.CheckpointOptions;
import org.apache.flink.runtime.operators.testutils.MockEnvironment;
import org.apache.flink.runtime.operators.testutils.MockEnvironmentBuilder;
import org.apache.flink.runtime.state.CheckpointStorageAccess;
import org.apache.flink.runtime.state.CheckpointStreamFactory;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.KeyedStateBackendParametersImpl;
import org.apache.flink.runtime.state.KeyedStateHandle;
import org.apache.flink.runtime.state.SnapshotResult;
import org.apache.flink.runtime.state.ttl.TtlTimeProvider;

/** Creates keyed backends directly through Flink's SPI, and snapshots them. */
final class BackendHarness implements AutoCloseable {
    static final int MAX_PARALLELISM = 128;

    final AbstractNativeBackend backend;
    final MockEnvironment env;
    final JobID jobId = new JobID();
    private final CheckpointStorageAccess storage;

    BackendHarness(AbstractNativeBackend backend) throws Exception {
        this.backend = backend;
        this.env = new MockEnvironmentBuilder().setMaxParallelism(MAX_PARALLELISM).build();
        this.storage = backend.createCheckpointStorage(jobId);
        storage.initializeBaseLocationsForCheckpoint();
    }

    NativeKeyedStateBackend<Integer> create(
            KeyGroupRange range, Collection<KeyedStateHandle> restore) throws Exception {
        return backend.createKeyedStateBackend(
                new KeyedStateBackendParametersImpl<>(
                        env,
                        jobId,
                        "test-operator",
                        IntSerializer.INSTANCE,
                        MAX_PARALLELISM,
                        range,
                        env.getTaskKvStateRegistry(),
                        TtlTimeProvider.DEFAULT,
                        new UnregisteredMetricsGroup(),
                        restore,
                        new CloseableRegistry()));
    }

    NativeKeyedStateBackend<Integer> create() throws Exception {
        return create(KeyGroupRange.of(0, MAX_PARALLELISM - 1), List.of());
    }

    /** A backend owning every key group, with keys of another type. */
    <K> NativeKeyedStateBackend<K> create(TypeSerializer<K> keySerializer) throws Exception {
        return backend.createKeyedStateBackend(
                new KeyedStateBackendParametersImpl<>(
                        env,
                        jobId,
                        "test-operator",
                        keySerializer,
                        MAX_PARALLELISM,
                        KeyGroupRange.of(0, MAX_PARALLELISM - 1),
                        env.getTaskKvStateRegistry(),
                        TtlTimeProvider.DEFAULT,
                        new UnregisteredMetricsGroup(),
                        List.of(),
                        new CloseableRegistry()));
    }

    KeyedStateHandle snapshot(NativeKeyedStateBackend<Integer> keyed, long checkpointId)
            throws Exception {
        return snapshot(keyed, checkpointId, CheckpointOptions.forCheckpointWithDefaultLocation());
    }

    KeyedStateHandle snapshot(
            NativeKeyedStateBackend<Integer> keyed, long checkpointId, CheckpointOptions options)
            throws Exception {
        CheckpointStreamFactory streams =
                storage.resolveCheckpointStorageLocation(
                        checkpointId,
                        org.apache.flink.runtime.state.CheckpointStorageLocationReference
                                .getDefault());
        RunnableFuture<SnapshotResult<KeyedStateHandle>> future =
                keyed.snapshot(checkpointId, 0L, streams, options);
        future.run();
        return future.get().getJobManagerOwnedSnapshot();
    }

    @Override
    public void close() throws Exception {
        env.close();
    }
}
