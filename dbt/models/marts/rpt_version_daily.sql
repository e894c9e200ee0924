{#- Daily business figures per model version the devices ran (the cloud-order cohort as 'cloud order'), summed
    over int_device_version_daily. Incremental: each run replaces its own ds. -#}

{{
    config(
        materialized='incremental',
        unique_key=['ds', 'model_version'],
        incremental_strategy=('insert_overwrite' if target.type == 'spark' else 'delete+insert'),
        partition_by=('ds' if target.type == 'spark' else none),
        file_format=('parquet' if target.type == 'spark' else none)
    )
}}

with

devices as (

    select * from {{ ref('int_device_version_daily') }}
    {% if is_incremental() %}where ds = {{ edgerec.ds_var() }}{% endif %}

),

final as (

    select
        ds,
        model_version,
        count(*) as devices,
        cast(sum(sessions) as bigint) as sessions,
        cast(sum(exposures) as bigint) as exposures,
        cast(sum(clicks) as bigint) as clicks,
        cast(sum(page_views) as bigint) as page_views,
        cast(sum(carts) as bigint) as carts,
        cast(sum(purchases) as bigint) as purchases,
        cast(sum(gmv_price_levels) as bigint) as gmv_price_levels,
        cast(sum(reranks) as bigint) as reranks

    from devices
    group by ds, model_version

)

select
    *,
    {{ edgerec.safe_divide('clicks', 'exposures') }} as ctr,
    {{ edgerec.safe_divide('reranks', 'sessions') }} as reranks_per_session

from final
