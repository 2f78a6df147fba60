package io.statebackend.internal;

import java.io.IOException;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.RunnableFuture;
import javax.annotation.Nonnull;
import javax.annotation.Nullable;
import org.apache.flink.api.common.state.v2.State;
import org.apache.flink.api.common.state.v2.StateDescriptor;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.runtime.asyncprocessing.StateExecutor;
import org.apache.flink.runtime.asyncprocessing.StateRequestHandler;
import org.apache.flink.runtime.checkpoint.CheckpointOptions;
import org.apache.flink.runtime.checkpoint.SnapshotType;
import org.apache.flink.runtime.state.AsyncKeyedStateBackend;
import org.apache.flink.runtime.state.CheckpointStreamFactory;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.KeyGroupedInternalPriorityQueue;
import org.apache.flink.runtime.state.Keyed;
import org.apache.flink.runtime.state.KeyedStateHandle;
import org.apache.flink.runtime.state.PriorityComparable;
import org.apache.flink.runtime.state.SnapshotResult;
import org.apache.flink.runtime.state.heap.HeapPriorityQueueElement;
import org.apache.flink.runtime.state.internal.InternalKvState;
import org.apache.flink.runtime.state.v2.AbstractAggregatingState;
import org.apache.flink.runtime.state.v2.AbstractMapState;
import org.apache.flink.runtime.state.v2.AbstractReducingState;
import org.apache.flink.runtime.state.v2.AbstractValueState;
import org.apache.flink.runtime.state.v2.StateDescriptorUtils;
import org.apache.flink.runtime.state.v2.internal.InternalKeyedState;
import org.apache.flink.util.Preconditions;

/**
 * Flink 2.x's asynchronous keyed backend (State V2) over a {@link NativeKeyedStateBackend}.
 *
 * <p>Each V2 state is one of Flink's request-issuing states ({@code AbstractValueState} and the
 * like): its calls become {@code StateRequest}s that carry their record's key and namespace, which
 * Flink's {@code AsyncExecutionController} orders per key and hands to this backend's {@link
 * NativeStateExecutor} in batches. The executor runs them against the same native states V1 uses,
 * so snapshots, restore, timers and TTL are the synchronous backend's, and a job can move between
 * V1, Flink's adaptor and this backend through any checkpoint.
 *
 * <p>Unlike Flink's adaptor, which needs the controller to tell it each record's key, a request
 * here names its own key: this is what Flink's {@code StateBackendTestV2Base} and any controller
 * without a context listener rely on.
 */
public final class NativeAsyncKeyedStateBackend<K> implements AsyncKeyedStateBackend<K> {
    private final NativeKeyedStateBackend<K> backend;
    private final NativeStateExecutor<K> executor;
    private final Map<String, State> states = new HashMap<>();
    @Nullable private StateRequestHandler requestHandler;

    public NativeAsyncKeyedStateBackend(NativeKeyedStateBackend<K> backend) {
        this.backend = backend;
        this.executor = new NativeStateExecutor<>(backend);
    }

    /** The synchronous backend underneath (its states, snapshots and timers). */
    public NativeKeyedStateBackend<K> keyedStateBackend() {
        return backend;
    }

    @Override
    public void setup(@Nonnull StateRequestHandler stateRequestHandler) {
        this.requestHandler = stateRequestHandler;
    }

    @Override
    @SuppressWarnings("unchecked")
    public <N, S extends State, SV> S getOrCreateKeyedState(
            N defaultNamespace,
            TypeSerializer<N> namespaceSerializer,
            StateDescriptor<SV> stateDesc)
            throws Exception {
        S state = (S) states.get(stateDesc.getStateId());
        if (state == null) {
            state = createStateInternal(defaultNamespace, namespaceSerializer, stateDesc);
            states.put(stateDesc.getStateId(), state);
        }
        return state;
    }

    @Nonnull
    @Override
    @SuppressWarnings({"unchecked", "rawtypes"})
    public <N, S extends InternalKeyedState, SV> S createStateInternal(
            @Nonnull N defaultNamespace,
            @Nonnull TypeSerializer<N> namespaceSerializer,
            @Nonnull StateDescriptor<SV> stateDesc)
            throws Exception {
        Preconditions.checkState(
                requestHandler != null, "setup() must be called before states are created");
        stateDesc.initializeSerializerUnlessSet(backend.executionConfig());
        org.apache.flink.api.common.state.StateDescriptor v1Desc =
                StateDescriptorUtils.transformFromV2ToV1(stateDesc);
        // Flink's transformation drops TTL; the native state keeps it (the V1 TTL wrappers).
        if (stateDesc.getTtlConfig().isEnabled()) {
            v1Desc.enableTimeToLive(stateDesc.getTtlConfig());
        }
        InternalKvState<K, N, ?> target =
                (InternalKvState<K, N, ?>)
                        backend.getPartitionedState(defaultNamespace, namespaceSerializer, v1Desc);
        TypeSerializer<SV> serializer = stateDesc.getSerializer();
        InternalKeyedState<K, N, SV> state;
        switch (stateDesc.getType()) {
            case VALUE:
                state = new AbstractValueState<>(requestHandler, serializer);
                break;
            case LIST:
                state = new NativeListStateV2<>(requestHandler, serializer);
                break;
            case MAP:
                state = new AbstractMapState<>(requestHandler, serializer);
                break;
            case REDUCING:
                state =
                        new AbstractReducingState<>(
                                requestHandler,
                                ((org.apache.flink.api.common.state.v2.ReducingStateDescriptor<SV>)
                                                stateDesc)
                                        .getReduceFunction(),
                                serializer);
                break;
            case AGGREGATING:
                state =
                        new AbstractAggregatingState<>(
                                requestHandler,
                                ((org.apache.flink.api.common.state.v2.AggregatingStateDescriptor)
                                                stateDesc)
                                        .getAggregateFunction(),
                                serializer);
                break;
            default:
                throw new UnsupportedOperationException(
                        "State V2 type " + stateDesc.getType() + " is not supported");
        }
        executor.register(state, target, defaultNamespace);
        return (S) state;
    }

    @Nonnull
    @Override
    public StateExecutor createStateExecutor() {
        return executor;
    }

    @Override
    public KeyGroupRange getKeyGroupRange() {
        return backend.getKeyGroupRange();
    }

    // No switchContext: every request sets its own key (NativeStateExecutor), and nothing else
    // reads the synchronous backend's current key under State V2 (timers carry their keys), so
    // setting it per record as well would serialize each key twice.

    @Nonnull
    @Override
    public RunnableFuture<SnapshotResult<KeyedStateHandle>> snapshot(
            long checkpointId,
            long timestamp,
            @Nonnull CheckpointStreamFactory streamFactory,
            @Nonnull CheckpointOptions checkpointOptions)
            throws Exception {
        return backend.snapshot(checkpointId, timestamp, streamFactory, checkpointOptions);
    }

    @Override
    public void notifyCheckpointComplete(long checkpointId) throws Exception {
        backend.notifyCheckpointComplete(checkpointId);
    }

    @Override
    public void notifyCheckpointAborted(long checkpointId) throws Exception {
        backend.notifyCheckpointAborted(checkpointId);
    }

    @Override
    public void notifyCheckpointSubsumed(long checkpointId) throws Exception {
        backend.notifyCheckpointSubsumed(checkpointId);
    }

    @Nonnull
    @Override
    public <T extends HeapPriorityQueueElement & PriorityComparable<? super T> & Keyed<?>>
            KeyGroupedInternalPriorityQueue<T> create(
                    @Nonnull String stateName,
                    @Nonnull TypeSerializer<T> byteOrderedElementSerializer) {
        return backend.create(stateName, byteOrderedElementSerializer);
    }

    @Override
    public <T extends HeapPriorityQueueElement & PriorityComparable<? super T> & Keyed<?>>
            KeyGroupedInternalPriorityQueue<T> create(
                    @Nonnull String stateName,
                    @Nonnull TypeSerializer<T> byteOrderedElementSerializer,
                    boolean allowFutureMetadataUpdates) {
        return backend.create(stateName, byteOrderedElementSerializer, allowFutureMetadataUpdates);
    }

    @Override
    public boolean requiresLegacySynchronousTimerSnapshots(SnapshotType checkpointType) {
        return backend.requiresLegacySynchronousTimerSnapshots(checkpointType);
    }

    @Override
    public boolean isSafeToReuseKVState() {
        return backend.isSafeToReuseKVState();
    }

    @Override
    public String getBackendTypeIdentifier() {
        return backend.getBackendTypeIdentifier();
    }

    @Override
    public void dispose() {
        executor.shutdown();
        backend.dispose();
    }

    @Override
    public void close() throws IOException {
        backend.close();
    }
}
