package io.statebackend.internal;

import org.apache.flink.api.common.ExecutionConfig;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.core.fs.CloseableRegistry;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.runtime.query.TaskKvStateRegistry;
import org.apache.flink.runtime.state.AbstractKeyedStateBackend;
import org.apache.flink.runtime.state.InternalKeyContext;
import org.apache.flink.runtime.state.metrics.LatencyTrackingStateConfig;
import org.apache.flink.runtime.state.metrics.SizeTrackingStateConfig;
import org.apache.flink.runtime.state.ttl.TtlTimeProvider;

/**
 * Flink 2.3's {@link AbstractKeyedStateBackend} as {@link NativeKeyedStateBackend} (shared by every
 * Flink line) extends it: the line-specific constructor (state size tracking, new in 2.x) and the
 * backend type identifier 2.x asks for.
 */
abstract class FlinkKeyedStateBackend<K> extends AbstractKeyedStateBackend<K> {
    private final String backendType;
    private final ExecutionConfig executionConfig;

    FlinkKeyedStateBackend(
            TaskKvStateRegistry kvStateRegistry,
            TypeSerializer<K> keySerializer,
            ClassLoader userCodeClassLoader,
            ExecutionConfig executionConfig,
            TtlTimeProvider ttlTimeProvider,
            ReadableConfig trackingOptions,
            MetricGroup metricGroup,
            CloseableRegistry cancelStreamRegistry,
            InternalKeyContext<K> keyContext,
            String backendType) {
        super(
                kvStateRegistry,
                keySerializer,
                userCodeClassLoader,
                executionConfig,
                ttlTimeProvider,
                LatencyTrackingStateConfig.newBuilder()
                        .configure(trackingOptions)
                        .setMetricGroup(metricGroup)
                        .build(),
                SizeTrackingStateConfig.newBuilder()
                        .configure(trackingOptions)
                        .setMetricGroup(metricGroup)
                        .build(),
                cancelStreamRegistry,
                keyContext);
        this.backendType = backendType;
        this.executionConfig = executionConfig;
    }

    /** The job's execution config, for State V2 descriptors' serializers. */
    ExecutionConfig executionConfig() {
        return executionConfig;
    }

    @Override
    public String getBackendTypeIdentifier() {
        return backendType;
    }
}
