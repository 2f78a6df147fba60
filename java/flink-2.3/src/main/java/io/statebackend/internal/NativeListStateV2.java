package io.statebackend.internal;

import java.util.Collection;
import org.apache.flink.api.common.state.v2.StateFuture;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.runtime.asyncprocessing.StateRequestHandler;
import org.apache.flink.runtime.asyncprocessing.StateRequestType;
import org.apache.flink.runtime.state.v2.AbstractListState;

/**
 * Flink's request-issuing V2 list state, plus the namespace merge Flink's leaves out (merging
 * windows need it): one request that the native list state merges in place.
 */
final class NativeListStateV2<K, N, V> extends AbstractListState<K, N, V> {

    NativeListStateV2(StateRequestHandler stateRequestHandler, TypeSerializer<V> serializer) {
        super(stateRequestHandler, serializer);
    }

    @Override
    public StateFuture<Void> asyncMergeNamespaces(N target, Collection<N> sources) {
        return handleRequest(StateRequestType.CUSTOMIZED, new MergeNamespaces<>(target, sources));
    }

    @Override
    public void mergeNamespaces(N target, Collection<N> sources) {
        handleRequestSync(StateRequestType.CUSTOMIZED, new MergeNamespaces<>(target, sources));
    }

    /** The payload of a merge request. */
    record MergeNamespaces<N>(N target, Collection<N> sources) {}
}
