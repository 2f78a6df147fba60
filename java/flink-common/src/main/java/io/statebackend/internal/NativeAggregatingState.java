package io.statebackend.internal;

import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.runtime.state.internal.InternalAggregatingState;

/** Aggregating state: the accumulator is the native value; the function runs in Java. */
final class NativeAggregatingState<K, N, IN, ACC, OUT>
        extends AbstractNativeMergingValueState<K, N, ACC>
        implements InternalAggregatingState<K, N, IN, ACC, OUT> {
    private final AggregateFunction<IN, ACC, OUT> aggregateFunction;

    NativeAggregatingState(
            NativeKeyedStateBackend<K> backend,
            int stateId,
            String name,
            TypeSerializer<N> namespaceSerializer,
            TypeSerializer<ACC> accumulatorSerializer,
            AggregateFunction<IN, ACC, OUT> aggregateFunction) {
        super(backend, stateId, name, namespaceSerializer, accumulatorSerializer);
        this.aggregateFunction = aggregateFunction;
    }

    @Override
    ACC merge(ACC a, ACC b) {
        return aggregateFunction.merge(a, b);
    }

    @Override
    public OUT get() throws Exception {
        ACC acc = getInternal();
        return acc == null ? null : aggregateFunction.getResult(acc);
    }

    @Override
    public void add(IN value) throws Exception {
        if (value == null) {
            clear();
            return;
        }
        ACC acc = getInternal();
        if (acc == null) {
            acc = aggregateFunction.createAccumulator();
        }
        updateInternal(aggregateFunction.add(value, acc));
    }
}
