package io.statebackend.internal;

import java.util.function.Supplier;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSchemaCompatibility;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.ReadableConfig;

/** What differs between Flink lines outside the keyed backend's base class: Flink 1.20. */
public final class FlinkLine {
    /** The Flink line this jar is built for. */
    public static final String VERSION = "1.20";

    private FlinkLine() {}

    /**
     * Copies the state-metrics options a keyed backend reads beyond latency tracking (which every
     * line has): none on 1.20.
     */
    public static void copyTrackingOptions(ReadableConfig from, Configuration to) {}

    /**
     * Whether a restored state's value serializer {@code serializer} can read what {@code old}
     * wrote ({@code previous} restores the serializer {@code old} describes). On 1.20 as Flink
     * 1.20's backends: turning TTL on or off for a state is incompatible.
     */
    static <T> TypeSerializerSchemaCompatibility<T> resolveValueSerializer(
            TypeSerializer<T> serializer,
            TypeSerializerSnapshot<T> old,
            Supplier<TypeSerializer<T>> previous) {
        return serializer.snapshotConfiguration().resolveSchemaCompatibility(old);
    }
}
