{#- Exposures, clicks and CTR per ds, model version the devices ran ('cloud order': none) and display position:
    where in the page each version's clicks come from (the paper: EdgeRec's CTR rises most at the end of a page).
    Incremental: each run replaces its own ds. -#}

{{
    config(
        materialized='incremental',
        unique_key=['ds', 'model_version', 'position'],
        incremental_strategy=('insert_overwrite' if target.type == 'spark' else 'delete+insert'),
        partition_by=('ds' if target.type == 'spark' else none),
        file_format=('parquet' if target.type == 'spark' else none)
    )
}}

with

events as (

    select
        cast(ds as date) as ds,
        coalesce(model_version, 'cloud order') as model_version,
        position,
        event_type

    from {{ source('warehouse', 'events') }}
    where event_type in ('exposure', 'click') and position is not null
    {% if is_incremental() %}and cast(ds as date) = {{ edgerec.ds_var() }}{% endif %}

),

final as (

    select
        ds,
        model_version,
        position,
        cast(sum(case when event_type = 'exposure' then 1 else 0 end) as bigint) as exposures,
        cast(sum(case when event_type = 'click' then 1 else 0 end) as bigint) as clicks

    from events
    group by ds, model_version, position

)

select
    *,
    {{ edgerec.safe_divide('clicks', 'exposures') }} as ctr

from final
