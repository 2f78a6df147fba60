package io.statebackend.internal;

import java.util.function.Supplier;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.common.typeutils.TypeSerializerSchemaCompatibility;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.configuration.StateSizeTrackOptions;
import org.apache.flink.runtime.state.ttl.TtlAwareSerializer;
import org.apache.flink.runtime.state.ttl.TtlAwareSerializerSnapshotWrapper;

/** What differs between Flink lines outside the keyed backend's base class: Flink 2.3. */
public final class FlinkLine {
    /** The Flink line this jar is built for. */
    public static final String VERSION = "2.3";

    private FlinkLine() {}

    /**
     * Copies the state-metrics options a keyed backend reads beyond latency tracking (which every
     * line has): 2.x's state size tracking ({@code state.size-track.*}).
     */
    public static void copyTrackingOptions(ReadableConfig from, Configuration to) {
        copy(StateSizeTrackOptions.SIZE_TRACK_ENABLED, from, to);
        copy(StateSizeTrackOptions.SIZE_TRACK_SAMPLE_INTERVAL, from, to);
        copy(StateSizeTrackOptions.SIZE_TRACK_HISTORY_SIZE, from, to);
        copy(StateSizeTrackOptions.SIZE_TRACK_STATE_NAME_AS_VARIABLE, from, to);
    }

    /**
     * Whether a restored state's value serializer {@code serializer} can read what {@code old}
     * wrote ({@code previous} restores the serializer {@code old} describes). On 2.x as Flink 2.x's
     * backends: turning TTL on or off for a state is compatible after migration (Flink's {@link
     * TtlAwareSerializer}), if the user's serializers are compatible; {@link StateMigration} then
     * adds or strips the TTL timestamps.
     */
    @SuppressWarnings("unchecked")
    static <T> TypeSerializerSchemaCompatibility<T> resolveValueSerializer(
            TypeSerializer<T> serializer,
            TypeSerializerSnapshot<T> old,
            Supplier<TypeSerializer<T>> previous) {
        if (!TtlAwareSerializer.needTtlStateMigration(previous.get(), serializer)) {
            return serializer.snapshotConfiguration().resolveSchemaCompatibility(old);
        }
        TypeSerializerSchemaCompatibility<T> userValues =
                ((TypeSerializer<T>) TtlAwareSerializer.wrapTtlAwareSerializer(serializer))
                        .snapshotConfiguration()
                        .resolveSchemaCompatibility(
                                new TtlAwareSerializerSnapshotWrapper<>(old)
                                        .getTtlAwareSerializerSnapshot());
        return userValues.isIncompatible()
                ? userValues
                : TypeSerializerSchemaCompatibility.compatibleAfterMigration();
    }

    private static <T> void copy(ConfigOption<T> option, ReadableConfig from, Configuration to) {
        from.getOptional(option).ifPresent(value -> to.set(option, value));
    }
}
